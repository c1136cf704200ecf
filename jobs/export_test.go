package jobs

import (
	"time"

	"gorm.io/gorm"
)

// SetCommitHook replaces Enqueue's commit (tests of a lost commit answer).
func SetCommitHook(s *Store, h func(tx *gorm.DB) error) { s.commitHook = h }

// SetResolveTimeout sets how long a lost commit's run is looked for.
func SetResolveTimeout(d time.Duration) { resolveTimeout = d }

// AttemptRow exports attemptRow.
var AttemptRow = attemptRow

// Allowed exports allowed (the life cycle's transitions).
var Allowed = allowed
