package exec

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// TargetSet names the target databases and opens them; *pg.Pools fits.
type TargetSet interface {
	Names() []string
	preview.Targets
}

// Purged is what one target's purge removed: archive rows past their window, per request.
type Purged struct {
	Target string
	Rows   int64
	// Requests maps each request whose archive rows were removed to their number.
	Requests map[int64]int64
}

// Purge deletes, in every target, the archive rows whose window has passed (expires_at is
// reached), restored or not, and writes one purged audit event per target that had any, with
// the counts per request. A target without a tombstone schema is skipped; a target that fails
// does not stop the others (the errors are joined).
//
// The audit event is committed before the target's deletion: if the target's COMMIT then
// fails, the rows stay and the next purge removes them and audits again, so a purge is never
// unaudited, though a failed one may be audited twice. Concurrent purges of the same target
// are safe: the second waits on the first's row locks and finds nothing left.
func Purge(ctx context.Context, targets TargetSet, console bun.IDB) (out []Purged, err error) {
	defer pg.Wrap(&err, "exec.Purge")
	var errs []error
	for _, name := range targets.Names() {
		p, err := purgeTarget(ctx, targets, console, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", name, err))
			continue
		}
		if p != nil {
			out = append(out, *p)
		}
	}
	return out, errors.Join(errs...)
}

func purgeTarget(ctx context.Context, targets TargetSet, console bun.IDB, name string) (*Purged, error) {
	db, err := targets.DB(ctx, name)
	if err != nil {
		return nil, err
	}
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, pg.Interpret(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `WITH d AS (DELETE FROM tombstone.archive WHERE expires_at <= now() RETURNING request_id)
		SELECT request_id, count(*) FROM d GROUP BY request_id ORDER BY request_id`)
	if err != nil {
		if c := pg.Code(err); c == "42P01" || c == "3F000" {
			return nil, nil // no tombstone schema: nothing was ever archived here
		}
		return nil, fmt.Errorf("delete expired archive rows: %w", pg.Interpret(err))
	}
	p := &Purged{Target: name, Requests: map[int64]int64{}}
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, pg.Interpret(err)
		}
		p.Requests[id] = n
		p.Rows += n
	}
	if err := rows.Err(); err != nil {
		if c := pg.Code(err); c == "42P01" || c == "3F000" {
			return nil, nil
		}
		return nil, fmt.Errorf("delete expired archive rows: %w", pg.Interpret(err))
	}
	if p.Rows == 0 {
		return nil, nil
	}
	perRequest := map[string]any{}
	ids := make([]int64, 0, len(p.Requests))
	for id, n := range p.Requests {
		perRequest[strconv.FormatInt(id, 10)] = n
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	list := make([]any, len(ids))
	for i, id := range ids {
		list[i] = id
	}
	err = console.RunInTx(ctx, nil, func(ctx context.Context, atx bun.Tx) error {
		_, err := audit.Append(ctx, atx, audit.Event{
			ActorName: audit.SystemActor, Action: audit.ActionPurged, Target: name,
			Reason:  "archive window passed",
			Details: map[string]any{"rows": p.Rows, "requests": perRequest, "request_ids": list},
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit the purge: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit the purge (audited; the next purge retries): %w", pg.Interpret(err))
	}
	return p, nil
}

// namedTargets gives the executor's targets the names of the config's targets.
type namedTargets struct {
	preview.Targets
	names []string
}

func (n namedTargets) Names() []string { return n.names }

// RunPurger calls Purge over the config's targets now and then every interval until ctx is
// done, logging what it removed and any error. It returns nil when ctx is done. Safe to run
// from any number of processes.
func (e *Executor) RunPurger(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return errors.New("exec.RunPurger: interval must be positive")
	}
	names := make([]string, 0, len(e.Config.Targets))
	for n := range e.Config.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	targets := namedTargets{Targets: e.Targets, names: names}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		purged, err := Purge(ctx, targets, e.DB.Bun)
		if err != nil && ctx.Err() == nil {
			e.log().ErrorContext(ctx, "purging expired archives failed", "err", err)
		}
		for _, p := range purged {
			e.log().InfoContext(ctx, "purged expired archives", "target", p.Target, "rows", p.Rows, "requests", len(p.Requests))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
