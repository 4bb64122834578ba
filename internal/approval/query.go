package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// Get returns the request with its frozen preview and its approvals (who and when).
func Get(ctx context.Context, db bun.IDB, id int64) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Get(%d)", id)
	return get(ctx, db, id)
}

// openStates are the states of a request that holds its root (State.Open), as SQL: the
// predicate of the requests table's partial unique index on the root, which ON CONFLICT names.
const openStates = `('pending', 'approved', 'running', 'partial', 'paused')`

// GetHead is Get without the frozen preview: Preview is nil. A frozen preview never changes,
// so a page that keeps previews it has read asks for one with FrozenPreview only when it
// does not hold it yet.
func GetHead(ctx context.Context, db bun.IDB, id int64) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.GetHead(%d)", id)
	return getColumns(ctx, db, id, listColumns)
}

// FrozenPreview reads the preview frozen into request id; nil when the request has none.
func FrozenPreview(ctx context.Context, db bun.IDB, id int64) (p *preview.Preview, err error) {
	defer pg.Wrap(&err, "approval.FrozenPreview(%d)", id)
	var raw []json.RawMessage
	if err := db.NewRaw("SELECT preview FROM requests WHERE id = ?", id).Scan(ctx, &raw); err != nil {
		return nil, pg.Interpret(err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: #%d", ErrNotFound, id)
	}
	if len(raw[0]) == 0 || string(raw[0]) == "null" {
		return nil, nil
	}
	p = new(preview.Preview)
	if err := json.Unmarshal(raw[0], p); err != nil {
		return nil, fmt.Errorf("decode the frozen preview: %w", err)
	}
	return p, nil
}

func get(ctx context.Context, db bun.IDB, id int64) (*Request, error) {
	return getColumns(ctx, db, id, fullColumns)
}

func getColumns(ctx context.Context, db bun.IDB, id int64, columns string) (*Request, error) {
	var rs []Request
	if err := db.NewRaw("SELECT "+columns+fromRequests+"WHERE r.id = ?", id).Scan(ctx, &rs); err != nil {
		return nil, pg.Interpret(err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: #%d", ErrNotFound, id)
	}
	r := &rs[0]
	err := db.NewRaw(`SELECT a.approver_id, u.name AS approver_name, a.digest, a.created_at
		FROM approvals a JOIN users u ON u.id = a.approver_id
		WHERE a.request_id = ? ORDER BY a.created_at, a.approver_id`, id).Scan(ctx, &r.Approvals)
	if err != nil {
		return nil, pg.Interpret(err)
	}
	return r, nil
}

// Tab is a view of the requests list.
type Tab string

// The tabs.
const (
	// TabAwaiting is what the user can approve now: pending, not theirs, not yet approved by
	// them, and only when they hold the approver role and are enabled.
	TabAwaiting Tab = "awaiting"
	TabMine     Tab = "mine" // requested by the user
	TabAll      Tab = "all"
)

// ListFilter selects requests for the list page.
type ListFilter struct {
	Tab    Tab // "" means TabAll
	UserID int64
	State  State  // "" for any
	Kind   string // "" for any
	// Limit caps the page (default 50, at most MaxPage). Before pages: only ids below it (0
	// starts at the newest); pass the last id of a page to get the next.
	Limit  int
	Before int64
}

// MaxPage caps ListFilter.Limit.
const MaxPage = 200

// awaitingCondition selects what user ? can approve; it takes the user id three times.
const awaitingCondition = `r.state = 'pending' AND r.requester_id <> ?
	AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.request_id = r.id AND a.approver_id = ?)
	AND EXISTS (SELECT 1 FROM users me WHERE me.id = ? AND me.role = 'approver' AND me.disabled_at IS NULL)`

// List returns requests matching f, newest first, without their frozen previews or approvals
// (Request.ApprovalsGiven has the count).
func List(ctx context.Context, db bun.IDB, f ListFilter) (rs []Request, err error) {
	defer pg.Wrap(&err, "approval.List")
	conds := []string{"true"}
	var args []any
	switch f.Tab {
	case TabAwaiting:
		conds, args = append(conds, awaitingCondition), append(args, f.UserID, f.UserID, f.UserID)
	case TabMine:
		conds, args = append(conds, "r.requester_id = ?"), append(args, f.UserID)
	case TabAll, "":
	default:
		return nil, &ValidationError{Fields: []FieldError{{Field: "tab", Message: fmt.Sprintf("unknown tab %q", f.Tab)}}}
	}
	if f.State != "" {
		if !f.State.Valid() {
			return nil, &ValidationError{Fields: []FieldError{{Field: "state", Message: fmt.Sprintf("unknown state %q", f.State)}}}
		}
		conds, args = append(conds, "r.state = ?"), append(args, f.State)
	}
	if f.Kind != "" {
		conds, args = append(conds, "r.kind = ?"), append(args, f.Kind)
	}
	if f.Before > 0 {
		conds, args = append(conds, "r.id < ?"), append(args, f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxPage)
	args = append(args, limit)
	err = db.NewRaw("SELECT "+listColumns+fromRequests+"WHERE "+strings.Join(conds, " AND ")+
		" ORDER BY r.id DESC LIMIT ?", args...).Scan(ctx, &rs)
	return rs, pg.Interpret(err)
}

// CountAwaiting is the number of requests userID can approve now (the TabAwaiting list), for
// the navigation badge.
func CountAwaiting(ctx context.Context, db bun.IDB, userID int64) (n int, err error) {
	defer pg.Wrap(&err, "approval.CountAwaiting(%d)", userID)
	// Every page shows the badge: one prepared statement (pg.Direct), the user as $1 thrice.
	err = pg.DirectOf(db).QueryRowContext(ctx, "SELECT count(*) FROM requests r WHERE "+
		strings.ReplaceAll(awaitingCondition, "?", "$1"), userID).Scan(&n)
	return n, pg.Interpret(err)
}

// OpenFor returns the open (pending, approved, running, partial or paused) request for a root,
// without its frozen preview, or an error matching ErrNotFound.
func OpenFor(ctx context.Context, db bun.IDB, kind, target, rootKey string) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.OpenFor(%s, %s, %q)", kind, target, rootKey)
	var rs []Request
	err = db.NewRaw("SELECT "+listColumns+fromRequests+
		`WHERE r.kind = ? AND r.target = ? AND r.root_key = ? AND r.state IN `+openStates,
		kind, target, rootKey).Scan(ctx, &rs)
	if err != nil {
		return nil, pg.Interpret(err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: no open request for %s %q", ErrNotFound, kind, rootKey)
	}
	return &rs[0], nil
}

// OpenID returns the id of the open request for a root, or an error matching ErrNotFound: what
// a page needs to link to it, without reading the request.
func OpenID(ctx context.Context, db bun.IDB, kind, target, rootKey string) (int64, error) {
	ids, err := OpenIDs(ctx, db, kind, target, []string{rootKey})
	if err != nil {
		return 0, err
	}
	id, ok := ids[rootKey]
	if !ok {
		return 0, fmt.Errorf("%w: no open request for %s %q", ErrNotFound, kind, rootKey)
	}
	return id, nil
}

// OpenIDs returns the ids of the open requests for several roots of one kind, by root key (for
// the badges on search results). Roots without one are absent from the map.
func OpenIDs(ctx context.Context, db bun.IDB, kind, target string, rootKeys []string) (ids map[string]int64, err error) {
	defer pg.Wrap(&err, "approval.OpenIDs(%s, %s)", kind, target)
	ids = map[string]int64{}
	if len(rootKeys) == 0 {
		return ids, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT root_key, id FROM requests
		WHERE kind = ? AND target = ? AND root_key = ANY(?) AND state IN `+openStates, kind, target, pgdialect.Array(rootKeys))
	if err != nil {
		return nil, pg.Interpret(err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var id int64
		if err := rows.Scan(&key, &id); err != nil {
			return nil, pg.Interpret(err)
		}
		ids[key] = id
	}
	return ids, pg.Interpret(rows.Err())
}

// Timeline returns the request's audit events, oldest first: its history (requested,
// approvals and refused attempts, decisions, execution). A request with more than
// audit.MaxPage events shows its latest audit.MaxPage.
func Timeline(ctx context.Context, db bun.IDB, id int64) (events []audit.Event, err error) {
	defer pg.Wrap(&err, "approval.Timeline(%d)", id)
	events, _, err = audit.List(ctx, db, audit.Filter{RequestID: id}, 0, audit.MaxPage)
	slices.Reverse(events)
	return events, err
}
