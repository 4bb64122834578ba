package exec

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SetHooks installs fault-injection points: before runs when the target transaction has done
// everything but commit; after may replace the outcome of COMMIT as the executor sees it.
func (e *Executor) SetHooks(before func(ctx context.Context, tx pgx.Tx), after func(err error) error) {
	e.hooks = hooks{beforeCommit: before, afterCommit: after}
}
