package exec

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// MultiHooks are the fault-injection points of a request that spans targets.
type MultiHooks struct {
	// BeforePrepare runs before each target's PREPARE TRANSACTION.
	BeforePrepare func(ctx context.Context, target string, tx pgx.Tx)
	// Prepared runs once every target is prepared, Decided once the commit decision is
	// recorded; an error stops the executor there as if it had died.
	Prepared func() error
	Decided  func() error
}

// SetMultiHooks installs h, keeping the single-target hooks.
func (e *Executor) SetMultiHooks(h MultiHooks) {
	e.hooks.beforePrepare, e.hooks.prepared, e.hooks.decided = h.BeforePrepare, h.Prepared, h.Decided
}
