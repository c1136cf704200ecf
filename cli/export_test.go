package cli

import "time"

// Tests do not wait 10 s to learn that no worker ever used a database.
func init() { noWorkerAfter = 2 * time.Second }
