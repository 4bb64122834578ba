package exec

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// ErrNotPartial refuses to resume a request that did not stop part-way across its targets.
var ErrNotPartial = errors.New("only a partly executed request can be resumed")

// Resume asks for a partial request to run its unfinished targets, under the approval it
// already has (no new digest): it writes the "resumed" audit event with the actor, in one
// console transaction that holds the request's row lock, and the sweeper (Jobs.Sweep) queues
// the request's execution from that event. The run recomputes the cascade, skips the targets
// whose ledger shows them done, and checks the others against the digests verified when the
// request first ran.
//
// Who may resume is the caller's rule (approvers and admins, on the request page). Resuming
// twice before the run starts writes two events and runs once. It returns ErrNotPartial, and
// changes nothing, when the request is not partial.
func Resume(ctx context.Context, db bun.IDB, actor approval.Actor, id int64) (err error) {
	defer pg.Wrap(&err, "exec.Resume(%d)", id)
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var state approval.State
		if err := tx.NewRaw("SELECT state FROM requests WHERE id = ? FOR UPDATE", id).Scan(ctx, &state); err != nil {
			return pg.Interpret(err)
		}
		if state != approval.Partial {
			return fmt.Errorf("%w (it is %s)", ErrNotPartial, state)
		}
		req, err := approval.Get(ctx, tx, id)
		if err != nil {
			return err
		}
		ev := requestEvent(req, audit.ActionResumed, nil)
		uid := actor.ID
		ev.ActorID, ev.ActorName, ev.ClientIP = &uid, actor.Name, actor.ClientIP
		_, err = audit.Append(ctx, tx, ev)
		return err
	})
}
