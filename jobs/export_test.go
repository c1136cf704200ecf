package jobs

import (
	"context"
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

// The claim and completion internals, for this package's external tests
// (users of the package start runs through Starter and run them with a
// Pool).
type (
	ClaimOptions = claimOptions
	FinishItem   = finishItem
)

// ClaimBatch exports claimBatch.
func (s *Store) ClaimBatch(ctx context.Context, opts ClaimOptions) ([]*Claim, error) {
	return s.claimBatch(ctx, opts)
}

// FinishBatch exports finishBatch.
func (s *Store) FinishBatch(ctx context.Context, items []FinishItem) []error {
	return s.finishBatch(ctx, items)
}

// ClaimsByToken exports claimsByToken.
func (s *Store) ClaimsByToken(ctx context.Context, owner, token string, ttl time.Duration) ([]*Claim, error) {
	return s.claimsByToken(ctx, owner, token, ttl)
}

// ClaimLimits exports claimLimits.
var ClaimLimits = claimLimits

// FinishAndClaim exports finishAndClaim.
func (s *Store) FinishAndClaim(ctx context.Context, items []FinishItem, ahead *ClaimOptions) ([]error, []*Claim, error) {
	return s.finishAndClaim(ctx, items, ahead)
}

// DueFloor exports dueFloor; FloorScans exports floorScans.
type DueFloor = dueFloor

const FloorScans = floorScans
