package exec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// The actions of a restore, one per archive action: re-insert deleted rows, clear the
// tombstones the deletion set, put detached foreign-key values back.
const (
	RestoreReinsert    = "restore"
	RestoreUntombstone = "untombstone"
	RestoreReattach    = "reattach"
)

// Why a request cannot be restored. Test with errors.Is; every one wraps ErrNotRestorable.
var (
	ErrNotRestorable   = errors.New("the request cannot be restored")
	ErrNoArchive       = fmt.Errorf("%w: it has no archive (its kind keeps none, it changed nothing, or the archive was purged at the end of its window)", ErrNotRestorable)
	ErrArchiveExpired  = fmt.Errorf("%w: its archive window has passed", ErrNotRestorable)
	ErrAlreadyRestored = fmt.Errorf("%w: it has already been restored", ErrNotRestorable)
)

// ErrRestoreConflict means the live data conflicts with the archive: a unique value taken
// since, a parent row gone, a detached row gone. *ConflictError carries them.
var ErrRestoreConflict = errors.New("the restore conflicts with the current data")

// ConflictError lists the conflicts that block a restore.
type ConflictError struct{ Conflicts []Conflict }

func (e *ConflictError) Error() string {
	parts := make([]string, 0, len(e.Conflicts))
	for _, c := range e.Conflicts {
		parts = append(parts, c.String())
	}
	return ErrRestoreConflict.Error() + ": " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrRestoreConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrRestoreConflict }

// RestorePlan is what restoring a done deletion would do, evaluated against the live targets:
// per table the rows to re-insert, the tombstones to clear and the detached values to put
// back, and the conflicts that block it. Its Digest binds a restore request's approvals to
// exactly this plan; the executor recomputes it and drifts on any difference.
type RestorePlan struct {
	// RequestID is the deletion this plan undoes.
	RequestID int64        `json:"request_id"`
	Kind      string       `json:"kind"`
	Target    string       `json:"target"`
	Root      preview.Root `json:"root"`
	// Targets are the targets holding an archive of the deletion, in the deletion's order.
	Targets   []string      `json:"targets"`
	Lines     []RestoreLine `json:"lines"`
	Conflicts []Conflict    `json:"conflicts"`
	// ArchivedAt is when the deletion ran; ExpiresAt the end of its archive window (the
	// earliest over the targets).
	ArchivedAt   time.Time         `json:"archived_at"`
	ExpiresAt    time.Time         `json:"expires_at"`
	Fingerprints map[string]string `json:"schema_fingerprints"`
	PolicyHash   string            `json:"policy_hash"`
	Digest       string            `json:"digest"`
	At           time.Time         `json:"at"`
}

// RestoreLine is one (target, table, action) of a restore.
type RestoreLine struct {
	Target string `json:"target"`
	Table  string `json:"table"`
	// Action is RestoreReinsert, RestoreUntombstone or RestoreReattach.
	Action string `json:"action"`
	// Rows are the rows the restore changes.
	Rows int64 `json:"rows"`
	// Skipped are archived tombstones left alone because the row no longer carries the
	// tombstone the deletion set (it was cleared, or set again, since).
	Skipped int64  `json:"skipped,omitempty"`
	KeyHash string `json:"-"`
}

// Conflict is a set of archived rows that cannot go back as they were.
type Conflict struct {
	Target string `json:"target"`
	Table  string `json:"table"`
	Reason string `json:"reason"`
	Rows   int64  `json:"rows"`
	// Sample holds up to five archived keys, as JSON objects.
	Sample []string `json:"sample,omitempty"`
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s %s: %s rows: %s", c.Target, c.Table, preview.Thousands(c.Rows), c.Reason)
}

// Blocked reports whether conflicts stop the restore.
func (p *RestorePlan) Blocked() bool { return len(p.Conflicts) > 0 }

// Rows is the number of rows the restore changes.
func (p *RestorePlan) Rows() int64 {
	var n int64
	for _, l := range p.Lines {
		n += l.Rows
	}
	return n
}

// Preview is the plan in the shape approval.Create freezes into a restore request: the summary
// lines carry the restore actions, the conflicts are blockers, and the totals count the rows
// per action of the deletion being undone (re-inserted rows as Delete, cleared tombstones as
// Soft, re-attached values as Detach), so escalation rules weigh a restore as they weighed the
// deletion.
func (p *RestorePlan) Preview() *preview.Preview {
	pv := &preview.Preview{
		Kind: p.Kind, Target: p.Target, Root: p.Root, Action: RestoreReinsert,
		Digest: p.Digest, PolicyHash: p.PolicyHash, Fingerprints: p.Fingerprints,
		Exact: true, At: p.At, Blockers: []preview.Blocker{}, Warnings: []preview.Warning{},
		Summary: []preview.SummaryLine{},
	}
	perTarget := map[string]*preview.Totals{}
	for _, t := range p.Targets {
		perTarget[t] = &preview.Totals{}
	}
	tables := map[string]bool{}
	for _, l := range p.Lines {
		pv.Summary = append(pv.Summary, preview.SummaryLine{Target: l.Target, Table: l.Table, Action: l.Action, Rows: l.Rows, KeyHash: l.KeyHash})
		tt := perTarget[l.Target]
		if tt == nil {
			tt = &preview.Totals{}
			perTarget[l.Target] = tt
		}
		for _, tot := range []*preview.Totals{&pv.Totals, tt} {
			switch l.Action {
			case RestoreReinsert:
				tot.Delete += l.Rows
			case RestoreUntombstone:
				tot.Soft += l.Rows
			case RestoreReattach:
				tot.Detach += l.Rows
			}
		}
		if l.Rows > 0 && !tables[l.Target+" "+l.Table] {
			tables[l.Target+" "+l.Table] = true
			pv.Totals.Tables++
			tt.Tables++
		}
		if l.Skipped > 0 {
			pv.Warnings = append(pv.Warnings, preview.Warning{Code: "tombstone_changed", Message: fmt.Sprintf(
				"%s %s: %s tombstoned rows no longer carry the tombstone the deletion set; they are left as they are",
				l.Target, l.Table, preview.Thousands(l.Skipped))})
		}
	}
	for _, t := range p.Targets {
		pv.Targets = append(pv.Targets, preview.TargetTotal{Target: t, Totals: *perTarget[t]})
	}
	for _, c := range p.Conflicts {
		b := preview.Blocker{Target: c.Target, Table: c.Table, Reason: c.Reason, Rows: c.Rows}
		for _, s := range c.Sample {
			b.Sample = append(b.Sample, preview.Row{Key: s})
		}
		pv.Blockers = append(pv.Blockers, b)
	}
	if !p.ExpiresAt.IsZero() {
		pv.Warnings = append(pv.Warnings, preview.Warning{Code: "archive_expires", Message: "the archive is kept until " +
			p.ExpiresAt.UTC().Format(time.RFC3339) + "; after that the deletion can no longer be restored"})
	}
	return pv
}

// RestorePreview evaluates the restore of done deletion req against the live targets, in one
// read-only REPEATABLE READ transaction per target that is always rolled back. It fails with
// an error wrapping ErrNotRestorable when req is not a done deletion, has no archive, its
// archive expired, or it was restored already; conflicts do not fail it, they are in the plan.
func RestorePreview(ctx context.Context, targets preview.Targets, req *approval.Request) (p *RestorePlan, err error) {
	defer pg.Wrap(&err, "exec.RestorePreview(%d)", req.ID)
	if err := restorable(req); err != nil {
		return nil, err
	}
	var evals []*targetRestore
	for _, name := range restoreTargets(req) {
		db, err := targets.DB(ctx, name)
		if err != nil {
			return nil, &preview.TargetError{Target: name, Err: err}
		}
		sch, err := schema.Load(ctx, db.Bun)
		if err != nil {
			return nil, &preview.TargetError{Target: name, Err: err}
		}
		ev, err := func() (*targetRestore, error) {
			tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
			if err != nil {
				return nil, pg.Interpret(err)
			}
			defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
			return evaluateRestore(ctx, tx, sch, name, req.ID)
		}()
		if err != nil {
			return nil, &preview.TargetError{Target: name, Err: err}
		}
		evals = append(evals, ev)
	}
	return assembleRestore(req, evals, time.Now())
}

// RestoreInput asks for the restore of a done deletion.
type RestoreInput struct {
	Actor approval.Actor
	// RequestID is the deletion to undo.
	RequestID int64
	Reason    string
	TicketURL string
}

// RequestRestore opens a restore request for a done deletion: it evaluates the restore
// (RestorePreview) and hands it to the approval service, which applies the same two-person
// rule as to a deletion. A plan with conflicts is not requested: the error is a
// *ConflictError, and the plan is returned so the caller can show them. approval.Create's
// errors (a short reason, an open request for the root, the actor's role) pass through.
func RequestRestore(ctx context.Context, svc *approval.Service, db bun.IDB, targets preview.Targets, in RestoreInput) (*approval.Request, *RestorePlan, error) {
	del, err := approval.Get(ctx, db, in.RequestID)
	if err != nil {
		return nil, nil, fmt.Errorf("exec.RequestRestore(%d): %w", in.RequestID, err)
	}
	plan, err := RestorePreview(ctx, targets, del)
	if err != nil {
		return nil, nil, err
	}
	if plan.Blocked() {
		return nil, plan, &ConflictError{Conflicts: plan.Conflicts}
	}
	r, err := svc.Create(ctx, db, approval.CreateInput{
		Actor: in.Actor, Preview: plan.Preview(), Reason: in.Reason, TicketURL: in.TicketURL,
		RestoresRequestID: del.ID,
	})
	if err != nil {
		return nil, plan, err
	}
	return r, plan, nil
}

// restorable checks that req is a deletion that ran.
func restorable(req *approval.Request) error {
	switch {
	case req.Operation == approval.Restore:
		return fmt.Errorf("%w: #%d is itself a restore", ErrNotRestorable, req.ID)
	case req.State != approval.Done && req.State != approval.Partial:
		return fmt.Errorf("%w: #%d has not run (it is %s)", ErrNotRestorable, req.ID, req.State)
	}
	return nil
}

// restoreTargets are the targets a deletion may have archived rows in, in its order.
func restoreTargets(req *approval.Request) []string {
	var out []string
	if req.Preview != nil {
		for _, t := range req.Preview.Targets {
			if !slices.Contains(out, t.Target) {
				out = append(out, t.Target)
			}
		}
	}
	if !slices.Contains(out, req.Target) {
		out = append([]string{req.Target}, out...)
	}
	return out
}

// targetRestore is one target's share of a restore, as evaluated in one transaction.
type targetRestore struct {
	target   string
	schema   *schema.Schema
	archived bool // the target holds archive rows of the deletion
	expired  bool
	restored bool // every archive row was restored already
	setAt    time.Time
	first    time.Time
	expires  time.Time
	tables   []*restoreTable
	conflict []Conflict
}

// restoreTable is one (table, archive action) with rows left to restore.
type restoreTable struct {
	table   *schema.Table
	action  string // the archive action: delete, soft or detach
	archive int64  // archive rows not restored yet
	// columns are the columns written: the inserted columns (delete), the tombstone column
	// (soft), the detached columns (detach).
	columns []string
	rows    int64 // rows the restore changes
	keyHash string
}

func (rt *restoreTable) restoreAction() string {
	switch rt.action {
	case config.ActionSoft:
		return RestoreUntombstone
	case config.ActionDetach:
		return RestoreReattach
	}
	return RestoreReinsert
}

// archiveWhere selects a request's archive rows of one table and action that are not restored
// yet: $1 request id, $2 target, $3 schema, $4 table, $5 action.
const archiveWhere = `a.request_id = $1 AND a.target = $2 AND a.table_schema = $3 AND a.table_name = $4
	AND a.action = $5 AND a.restored_by IS NULL`

// evaluateRestore reads, in q's snapshot, the archive of deletion id in target and checks it
// against the live rows of sch's tables.
func evaluateRestore(ctx context.Context, q preview.Querier, sch *schema.Schema, target string, id int64) (*targetRestore, error) {
	tr := &targetRestore{target: target, schema: sch}
	rows, err := q.Query(ctx, `SELECT table_schema, table_name, action,
			count(*) FILTER (WHERE restored_by IS NULL), min(archived_at), min(expires_at), bool_or(expires_at <= now())
		FROM tombstone.archive WHERE request_id = $1 AND target = $2
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, id, target)
	if err != nil {
		if pg.Code(err) == "42P01" || pg.Code(err) == "3F000" {
			return tr, nil // no tombstone schema: nothing was archived here
		}
		return nil, fmt.Errorf("read the archive: %w", pg.Interpret(err))
	}
	type group struct {
		name          pg.Table
		action        string
		left          int64
		first, expire time.Time
		expired       bool
	}
	groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (group, error) {
		var g group
		err := r.Scan(&g.name.Schema, &g.name.Name, &g.action, &g.left, &g.first, &g.expire, &g.expired)
		return g, err
	})
	if err != nil {
		if pg.Code(err) == "42703" {
			return nil, fmt.Errorf("read the archive: the target's tombstone schema is out of date (run console target init): %w", pg.Interpret(err))
		}
		return nil, fmt.Errorf("read the archive: %w", pg.Interpret(err))
	}
	if len(groups) == 0 {
		return tr, nil
	}
	tr.archived, tr.restored = true, true
	for _, g := range groups {
		if tr.first.IsZero() || g.first.Before(tr.first) {
			tr.first = g.first
		}
		if tr.expires.IsZero() || g.expire.Before(tr.expires) {
			tr.expires = g.expire
		}
		tr.expired = tr.expired || g.expired
		if g.left > 0 {
			tr.restored = false
		}
	}
	if tr.expired || tr.restored {
		return tr, nil
	}
	led, err := ReadLedger(ctx, q, target, id)
	if err != nil {
		return nil, fmt.Errorf("read the deletion's ledger row: %w", err)
	}
	tr.setAt = led.ExecutedAt
	for _, g := range groups {
		if g.left == 0 {
			continue
		}
		t := sch.Tables[g.name]
		if t == nil {
			tr.conflict = append(tr.conflict, Conflict{Target: target, Table: g.name.String(), Rows: g.left,
				Reason: "the table no longer exists"})
			continue
		}
		rt := &restoreTable{table: t, action: g.action, archive: g.left}
		var bad []Conflict
		switch g.action {
		case config.ActionDelete:
			bad, err = tr.checkReinsert(ctx, q, id, rt)
		case config.ActionSoft:
			bad, err = tr.checkUntombstone(ctx, q, id, rt)
		case config.ActionDetach:
			bad, err = tr.checkReattach(ctx, q, id, rt)
		default:
			err = fmt.Errorf("unknown archive action %q", g.action)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", restoreActionOf(g.action), t.Name, err)
		}
		tr.conflict = append(tr.conflict, bad...)
		tr.tables = append(tr.tables, rt)
	}
	return tr, nil
}

func restoreActionOf(action string) string {
	return (&restoreTable{action: action}).restoreAction()
}

// args are the archiveWhere arguments for rt, followed by extra.
func (tr *targetRestore) args(id int64, rt *restoreTable, extra ...any) []any {
	return append([]any{id, tr.target, rt.table.Name.Schema, rt.table.Name.Name, rt.action}, extra...)
}

// archivedColumns lists the keys of the archived row objects of rt and the conflicts of those
// that are no longer columns of the table.
func (tr *targetRestore) archivedColumns(ctx context.Context, q preview.Querier, id int64, rt *restoreTable) (map[string]bool, []Conflict, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT k FROM tombstone.archive a, jsonb_object_keys(a.row) k WHERE `+archiveWhere+` ORDER BY k`, tr.args(id, rt)...)
	if err != nil {
		return nil, nil, pg.Interpret(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, pg.Interpret(err)
	}
	out := map[string]bool{}
	var missing []string
	for _, k := range keys {
		out[k] = true
		if rt.table.Column(k) == nil {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return out, []Conflict{{Target: tr.target, Table: rt.table.Name.String(), Rows: rt.archive,
			Reason: "archived column(s) " + strings.Join(missing, ", ") + " no longer exist: their values would be lost"}}, nil
	}
	return out, nil, nil
}

// keyHash hashes the archive rows a step applies (ids and contents), in SQL.
func keyHash(ctx context.Context, q preview.Querier, from string, args []any) (string, error) {
	var h string
	err := q.QueryRow(ctx, `SELECT encode(sha256(convert_to(coalesce(string_agg(a.id::text || ':' || md5(a.row::text), ',' ORDER BY a.id), ''), 'UTF8')), 'hex') `+from, args...).Scan(&h)
	return h, pg.Interpret(err)
}

// conflictCount counts, with a sample of keys, the archive rows that from selects.
func (tr *targetRestore) conflictCount(ctx context.Context, q preview.Querier, rt *restoreTable, from string, args []any, reason string) (*Conflict, error) {
	var n int64
	var sample []string
	err := q.QueryRow(ctx, `SELECT count(*), coalesce((array_agg(a.key::text ORDER BY a.id))[1:5], '{}') `+from, args...).Scan(&n, &sample)
	if err != nil {
		return nil, pg.Interpret(err)
	}
	if n == 0 {
		return nil, nil
	}
	return &Conflict{Target: tr.target, Table: rt.table.Name.String(), Rows: n, Reason: reason, Sample: sample}, nil
}

// checkReinsert looks for unique values taken since and parent rows gone, for rows to re-insert.
func (tr *targetRestore) checkReinsert(ctx context.Context, q preview.Querier, id int64, rt *restoreTable) ([]Conflict, error) {
	t := rt.table
	cols, out, err := tr.archivedColumns(ctx, q, id, rt)
	if err != nil {
		return nil, err
	}
	for _, c := range t.Columns {
		if cols[c.Name] && !c.Generated {
			rt.columns = append(rt.columns, c.Name)
		}
	}
	rt.rows = rt.archive
	q1 := t.Name.Quoted()
	from := `FROM tombstone.archive a CROSS JOIN LATERAL jsonb_populate_record(NULL::` + q1 + `, a.row) r WHERE ` + archiveWhere
	if rt.keyHash, err = keyHash(ctx, q, from, tr.args(id, rt)); err != nil {
		return nil, err
	}
	var keys [][]string
	if len(t.PrimaryKey) > 0 {
		keys = append(keys, t.PrimaryKey)
	}
	keys = append(keys, t.Uniques...)
	for i, key := range keys {
		if !allIn(key, cols) {
			continue // not archived: the column takes its default
		}
		what := "unique"
		if i == 0 && len(t.PrimaryKey) > 0 {
			what = "primary key"
		}
		c, err := tr.conflictCount(ctx, q, rt,
			from+` AND EXISTS (SELECT 1 FROM `+q1+` x WHERE `+tuple("x", key)+` = `+tuple("r", key)+`)`, tr.args(id, rt),
			fmt.Sprintf("%s (%s) taken since the deletion: a row with the same value exists", what, strings.Join(key, ", ")))
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, *c)
		}
	}
	fks, err := tr.missingParents(ctx, q, id, rt, from, cols)
	if err != nil {
		return nil, err
	}
	return append(out, fks...), nil
}

// missingParents finds rows whose foreign keys, as they would be after the restore (from
// selects them as r), point to a row that neither exists nor is re-inserted by this restore.
// Only foreign keys whose columns the restore writes are checked.
func (tr *targetRestore) missingParents(ctx context.Context, q preview.Querier, id int64, rt *restoreTable, from string, cols map[string]bool) ([]Conflict, error) {
	var out []Conflict
	for _, fk := range tr.schema.Parents(rt.table.Name) {
		parent := tr.schema.Tables[fk.Parent]
		if parent == nil || !allIn(fk.Columns, cols) && rt.action == config.ActionDelete {
			continue
		}
		if rt.action == config.ActionDetach && !anyIn(fk.Columns, cols) {
			continue
		}
		var notNull []string
		for _, c := range fk.Columns {
			notNull = append(notNull, "r."+pg.QuoteIdent(c)+" IS NOT NULL")
		}
		cond := from + ` AND ` + strings.Join(notNull, " AND ") +
			` AND NOT EXISTS (SELECT 1 FROM ` + parent.Name.Quoted() + ` p WHERE ` + tuple("p", fk.RefColumns) + ` = ` + tuple("r", fk.Columns) + `)` +
			` AND NOT EXISTS (SELECT 1 FROM tombstone.archive a2 CROSS JOIN LATERAL jsonb_populate_record(NULL::` + parent.Name.Quoted() + `, a2.row) p
				WHERE a2.request_id = $1 AND a2.target = $2 AND a2.table_schema = $6 AND a2.table_name = $7
				AND a2.action = 'delete' AND a2.restored_by IS NULL AND ` + tuple("p", fk.RefColumns) + ` = ` + tuple("r", fk.Columns) + `)`
		c, err := tr.conflictCount(ctx, q, rt, cond, tr.args(id, rt, parent.Name.Schema, parent.Name.Name),
			fmt.Sprintf("the parent row no longer exists (%s)", fk))
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, *c)
		}
	}
	return out, nil
}

// liveFrom selects the archive rows of rt joined to the live row they name by primary key (as
// t), with the row as the restore leaves it as r.
func liveFrom(t *schema.Table) string {
	q1 := t.Name.Quoted()
	return `FROM tombstone.archive a CROSS JOIN LATERAL jsonb_populate_record(NULL::` + q1 + `, a.key) k
		JOIN ` + q1 + ` t ON ` + tuple("t", t.PrimaryKey) + ` = ` + tuple("k", t.PrimaryKey) + `
		CROSS JOIN LATERAL jsonb_populate_record(t, a.row) r WHERE ` + archiveWhere
}

// noKey is the conflict of a table without a primary key, whose changed rows cannot be found
// again with certainty.
func (tr *targetRestore) noKey(rt *restoreTable) []Conflict {
	return []Conflict{{Target: tr.target, Table: rt.table.Name.String(), Rows: rt.archive,
		Reason: "the table has no primary key: the changed rows cannot be found again"}}
}

// tombstoneMatch is the condition "t still carries the tombstone the deletion set": true for a
// boolean column, the deletion's transaction time ($6) for a timestamp.
func tombstoneMatch(col *schema.Column) string {
	name := "t." + pg.QuoteIdent(col.Name)
	if policy.IsBoolean(col) {
		return name + " IS TRUE"
	}
	return name + " = $6::timestamptz"
}

// untombstoneFrom selects the archived tombstones of rt still in place, with their arguments.
func (tr *targetRestore) untombstoneFrom(id int64, rt *restoreTable) (string, []any) {
	col := rt.table.Column(rt.columns[0])
	from := liveFrom(rt.table) + ` AND ` + tombstoneMatch(col)
	if policy.IsBoolean(col) {
		return from, tr.args(id, rt)
	}
	return from, tr.args(id, rt, tr.setAt)
}

// checkUntombstone counts the tombstones the deletion set that are still in place.
func (tr *targetRestore) checkUntombstone(ctx context.Context, q preview.Querier, id int64, rt *restoreTable) ([]Conflict, error) {
	cols, out, err := tr.archivedColumns(ctx, q, id, rt)
	if err != nil || out != nil {
		return out, err
	}
	if len(rt.table.PrimaryKey) == 0 {
		return tr.noKey(rt), nil
	}
	if len(cols) != 1 {
		return nil, fmt.Errorf("the archive holds %d tombstone columns, expected one", len(cols))
	}
	for c := range cols {
		rt.columns = []string{c}
	}
	from, args := tr.untombstoneFrom(id, rt)
	if err := q.QueryRow(ctx, `SELECT count(*) `+from, args...).Scan(&rt.rows); err != nil {
		return nil, pg.Interpret(err)
	}
	if rt.keyHash, err = keyHash(ctx, q, from, args); err != nil {
		return nil, err
	}
	return nil, nil
}

// checkReattach finds detached rows that are gone, and detached values whose parent is gone.
func (tr *targetRestore) checkReattach(ctx context.Context, q preview.Querier, id int64, rt *restoreTable) ([]Conflict, error) {
	cols, out, err := tr.archivedColumns(ctx, q, id, rt)
	if err != nil || out != nil {
		return out, err
	}
	t := rt.table
	if len(t.PrimaryKey) == 0 {
		return tr.noKey(rt), nil
	}
	for _, c := range t.Columns {
		if cols[c.Name] {
			rt.columns = append(rt.columns, c.Name)
		}
	}
	from := liveFrom(t)
	args := tr.args(id, rt)
	if err := q.QueryRow(ctx, `SELECT count(*) `+from, args...).Scan(&rt.rows); err != nil {
		return nil, pg.Interpret(err)
	}
	if rt.keyHash, err = keyHash(ctx, q, from, args); err != nil {
		return nil, err
	}
	if gone := rt.archive - rt.rows; gone > 0 {
		c, err := tr.conflictCount(ctx, q, rt, `FROM tombstone.archive a CROSS JOIN LATERAL jsonb_populate_record(NULL::`+t.Name.Quoted()+`, a.key) k
			WHERE `+archiveWhere+` AND NOT EXISTS (SELECT 1 FROM `+t.Name.Quoted()+` t WHERE `+tuple("t", t.PrimaryKey)+` = `+tuple("k", t.PrimaryKey)+`)`,
			args, "the detached rows no longer exist: their foreign-key values cannot be put back")
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, *c)
		}
	}
	fks, err := tr.missingParents(ctx, q, id, rt, from, cols)
	if err != nil {
		return nil, err
	}
	return append(out, fks...), nil
}

func allIn(cols []string, set map[string]bool) bool {
	for _, c := range cols {
		if !set[c] {
			return false
		}
	}
	return true
}

func anyIn(cols []string, set map[string]bool) bool {
	for _, c := range cols {
		if set[c] {
			return true
		}
	}
	return false
}

// tuple is "(alias.c1, alias.c2)", each column quoted.
func tuple(alias string, cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = alias + "." + pg.QuoteIdent(c)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// assembleRestore builds the plan from the targets' evaluations and digests it.
func assembleRestore(req *approval.Request, evals []*targetRestore, now time.Time) (*RestorePlan, error) {
	p := &RestorePlan{
		RequestID: req.ID, Kind: req.Kind, Target: req.Target,
		Root:       preview.Root{Table: req.RootTable, Key: req.RootKey, Keys: req.RootKeys, Label: req.RootLabel},
		PolicyHash: req.PolicyHash, Fingerprints: map[string]string{}, Lines: []RestoreLine{}, Conflicts: []Conflict{},
		At: now.UTC(),
	}
	archived, left := false, false
	for _, tr := range evals {
		if !tr.archived {
			continue
		}
		archived = true
		if tr.expired {
			return nil, fmt.Errorf("%w (it ended %s)", ErrArchiveExpired, tr.expires.UTC().Format(time.RFC3339))
		}
		if tr.restored {
			continue
		}
		left = true
		p.Targets = append(p.Targets, tr.target)
		p.Fingerprints[tr.target] = tr.schema.Fingerprint
		if p.ArchivedAt.IsZero() || tr.first.Before(p.ArchivedAt) {
			p.ArchivedAt = tr.first
		}
		if p.ExpiresAt.IsZero() || tr.expires.Before(p.ExpiresAt) {
			p.ExpiresAt = tr.expires
		}
		for _, rt := range tr.tables {
			l := RestoreLine{Target: tr.target, Table: rt.table.Name.String(), Action: rt.restoreAction(), Rows: rt.rows, KeyHash: rt.keyHash}
			if rt.action == config.ActionSoft {
				l.Skipped = rt.archive - rt.rows
			}
			p.Lines = append(p.Lines, l)
		}
		p.Conflicts = append(p.Conflicts, tr.conflict...)
	}
	switch {
	case !archived:
		return nil, ErrNoArchive
	case !left:
		return nil, ErrAlreadyRestored
	}
	sort.SliceStable(p.Lines, func(i, j int) bool {
		a, b := p.Lines[i], p.Lines[j]
		return a.Target+"\x00"+a.Table+"\x00"+a.Action < b.Target+"\x00"+b.Table+"\x00"+b.Action
	})
	p.Digest = restoreDigest(p)
	return p, nil
}

// restoreDigest is SHA-256 over the canonical plan: the deletion, the root, the schema
// fingerprints, every line with the hash of the archive rows it applies, and the conflicts.
func restoreDigest(p *RestorePlan) string {
	type line struct {
		Target  string `json:"target"`
		Table   string `json:"table"`
		Action  string `json:"action"`
		Rows    int64  `json:"rows"`
		Skipped int64  `json:"skipped"`
		KeyHash string `json:"key_hash"`
	}
	lines := make([]line, 0, len(p.Lines))
	for _, l := range p.Lines {
		lines = append(lines, line(l))
	}
	conflicts := make([]string, 0, len(p.Conflicts))
	for _, c := range p.Conflicts {
		conflicts = append(conflicts, c.String())
	}
	sort.Strings(conflicts)
	b, err := json.Marshal(struct {
		Restores     int64             `json:"restores"`
		Kind         string            `json:"kind"`
		Root         string            `json:"root"`
		Fingerprints map[string]string `json:"schema_fingerprints"`
		Lines        []line            `json:"lines"`
		Conflicts    []string          `json:"conflicts"`
	}{p.RequestID, p.Kind, p.Target + ":" + p.Root.Table + ":" + p.Root.Key, p.Fingerprints, lines, conflicts})
	if err != nil {
		panic(err) // plain values only
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// executeRestore runs an approved restore request, with retries, and says how it ended. It
// opens one READ COMMITTED transaction per target holding the deletion's archive, each behind
// the restore request's fence, recomputes the restore plan in them and compares its digest
// with the approved one (drifted on any difference), then fails on any conflict, re-inserts
// rows parents first, puts detached values back, clears the deletion's tombstones, marks the
// archive rows restored and writes the restore's ledger row. Nothing is changed unless every
// step of a target succeeds.
//
// The request's own target commits last: its ledger row, which the reconciler reads, then
// means every target committed. Should a commit fail after another target's commit, the
// committed targets stay restored (their archive rows are marked), the request fails, and a
// new restore request restores the rest.
func (e *Executor) executeRestore(ctx context.Context, req *approval.Request) outcome {
	if req.RestoresRequestID == 0 {
		return failed(errors.New("the restore request names no deletion to undo"), 0)
	}
	del, err := approval.Get(ctx, e.DB.Bun, req.RestoresRequestID)
	if err != nil {
		return failed(fmt.Errorf("read the deletion: %w", err), 0)
	}
	if err := restorable(del); err != nil {
		return failed(err, 0)
	}
	targets := restoreTargets(del)
	for _, t := range targets {
		if err := e.migrateTarget(ctx, t); err != nil {
			return failed(err, 0)
		}
	}
	// The request's own target goes last.
	slices.SortStableFunc(targets, func(a, b string) int {
		switch {
		case a == req.Target && b != req.Target:
			return 1
		case b == req.Target && a != req.Target:
			return -1
		}
		return 0
	})
	return e.retrying(ctx, req, "restore transaction", "", func(attempt int) (*outcome, error) {
		counts, err := e.restoreAttempt(ctx, req, del, targets)
		var commitErr *commitError
		switch {
		case err == nil:
			return &outcome{state: approval.Done, report: Report{
				Digest: req.Digest, Tables: counts.Tables(), Rows: counts.Total(), Attempts: attempt,
			}}, nil
		case errors.As(err, &commitErr):
			o := e.decideFromLedger(ctx, req, attempt, commitErr)
			return &o, nil
		}
		return nil, err
	})
}

// schemaOf is a target's current catalog, from the engine's cache when there is one.
func (e *Executor) schemaOf(ctx context.Context, target string, db *pg.DB) (*schema.Schema, error) {
	if e.Engine != nil {
		return e.Engine.Schema(ctx, target)
	}
	return schema.Load(ctx, db.Bun)
}

// restoreAttempt runs one try of a restore over its targets and returns the rows changed.
func (e *Executor) restoreAttempt(ctx context.Context, req, del *approval.Request, targets []string) (Counts, error) {
	type open struct {
		name string
		tx   pgx.Tx
		done bool
	}
	var txs []*open
	defer func() {
		for _, o := range txs {
			if !o.done {
				_ = o.tx.Rollback(context.WithoutCancel(ctx))
			}
		}
	}()
	var evals []*targetRestore
	for _, name := range targets {
		db, err := e.Targets.DB(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
		sch, err := e.schemaOf(ctx, name, db)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
		tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
		if err != nil {
			return nil, fmt.Errorf("target %s: begin: %w", name, pg.Interpret(err))
		}
		txs = append(txs, &open{name: name, tx: tx})
		t := e.Config.Targets[name]
		_, err = tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true),
			set_config('application_name', $3, true)`,
			millis(t.LockTimeout), millis(t.StatementTimeout), fmt.Sprintf("tombstone request %d", req.ID))
		if err != nil {
			return nil, fmt.Errorf("target %s: set the session limits: %w", name, pg.Interpret(err))
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", fenceLock(req.ID)); err != nil {
			return nil, fmt.Errorf("target %s: take the request's fence: %w", name, pg.Interpret(err))
		}
		ev, err := evaluateRestore(ctx, tx, sch, name, del.ID)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
		evals = append(evals, ev)
	}
	if err := e.stillRunning(ctx, req.ID); err != nil {
		return nil, err
	}
	plan, err := assembleRestore(del, evals, time.Now())
	if err != nil {
		return nil, err
	}
	if plan.Blocked() {
		return nil, &ConflictError{Conflicts: plan.Conflicts}
	}
	if plan.Digest != req.Digest {
		var approved []preview.SummaryLine
		if req.Preview != nil {
			approved = req.Preview.Summary
		}
		return nil, &DriftError{Approved: req.Digest, Current: plan.Digest, Changes: Diff(approved, plan.Preview().Summary)}
	}
	counts := Counts{}
	for i, ev := range evals {
		if !ev.archived || ev.restored {
			continue
		}
		prog := e.newProgress(req.ID, ev.target, nil)
		for _, rt := range ev.tables {
			if rt.rows > 0 {
				prog.status.Tables = append(prog.status.Tables, TableProgress{Table: rt.table.Name.String(), Action: rt.restoreAction(), Planned: rt.rows})
			}
		}
		prog.phase(ctx, PhaseLocking, true)
		c, err := applyRestore(ctx, txs[i].tx, ev, del.ID, req.ID, plan.Digest, prog.step)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", ev.target, err)
		}
		for k, v := range c {
			counts[k] = v
		}
	}
	if e.hooks.beforeCommit != nil {
		e.hooks.beforeCommit(ctx, txs[len(txs)-1].tx)
	}
	for i, o := range txs {
		err := o.tx.Commit(ctx)
		o.done = true
		if i == len(txs)-1 && e.hooks.afterCommit != nil {
			err = e.hooks.afterCommit(err)
		}
		if err != nil {
			if i == len(txs)-1 {
				return nil, &commitError{err: err}
			}
			return nil, fmt.Errorf("target %s: commit: %w", o.name, pg.Interpret(err))
		}
	}
	return counts, nil
}

// applyRestore changes one target inside tx as tr, evaluated in the same transaction, says:
// re-insert, re-attach, untombstone, mark the archive, write the ledger. Every statement's
// row count is checked against the plan.
func applyRestore(ctx context.Context, tx pgx.Tx, tr *targetRestore, delID, restoreID int64, digest string, report func(Step)) (Counts, error) {
	counts := Counts{}
	done := func(rt *restoreTable, n int64) error {
		if n != rt.rows {
			return fmt.Errorf("%s %s changed %d rows, expected %d", rt.restoreAction(), rt.table.Name, n, rt.rows)
		}
		counts[tr.target+" "+rt.table.Name.String()+" "+rt.restoreAction()] = n
		report(Step{Target: tr.target, Table: rt.table.Name.String(), Action: rt.restoreAction(), Rows: n, Phase: "applied"})
		return nil
	}
	for _, group := range insertOrder(tr) {
		n, err := insertGroup(ctx, tx, tr, delID, group)
		if err != nil {
			return nil, err
		}
		for i, rt := range group {
			if err := done(rt, n[i]); err != nil {
				return nil, err
			}
		}
	}
	for _, action := range []string{config.ActionDetach, config.ActionSoft} {
		for _, rt := range tr.tables {
			if rt.action != action || rt.rows == 0 {
				continue
			}
			t := rt.table
			var sql string
			args := tr.args(delID, rt)
			if action == config.ActionDetach {
				sets := make([]string, len(rt.columns))
				for i, c := range rt.columns {
					sets[i] = pg.QuoteIdent(c) + " = r." + pg.QuoteIdent(c)
				}
				sql = `UPDATE ` + t.Name.Quoted() + ` t SET ` + strings.Join(sets, ", ") + `
					FROM tombstone.archive a CROSS JOIN LATERAL jsonb_populate_record(NULL::` + t.Name.Quoted() + `, a.key) k
					CROSS JOIN LATERAL jsonb_populate_record(NULL::` + t.Name.Quoted() + `, a.row) r
					WHERE ` + archiveWhere + ` AND ` + tuple("t", t.PrimaryKey) + ` = ` + tuple("k", t.PrimaryKey)
			} else {
				col := pg.QuoteIdent(rt.columns[0])
				sql = `UPDATE ` + t.Name.Quoted() + ` t SET ` + col + ` = r.` + col + `
					FROM tombstone.archive a CROSS JOIN LATERAL jsonb_populate_record(NULL::` + t.Name.Quoted() + `, a.key) k
					CROSS JOIN LATERAL jsonb_populate_record(NULL::` + t.Name.Quoted() + `, a.row) r
					WHERE ` + archiveWhere + ` AND ` + tuple("t", t.PrimaryKey) + ` = ` + tuple("k", t.PrimaryKey) +
					` AND ` + tombstoneMatch(t.Column(rt.columns[0]))
				_, args = tr.untombstoneFrom(delID, rt)
			}
			tag, err := tx.Exec(ctx, sql, args...)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", rt.restoreAction(), t.Name, pg.Interpret(err))
			}
			if err := done(rt, tag.RowsAffected()); err != nil {
				return nil, err
			}
		}
	}
	var archived int64
	for _, rt := range tr.tables {
		archived += rt.archive
	}
	tag, err := tx.Exec(ctx, `UPDATE tombstone.archive SET restored_by = $3, restored_at = now()
		WHERE request_id = $1 AND target = $2 AND restored_by IS NULL`, delID, tr.target, restoreID)
	if err != nil {
		return nil, fmt.Errorf("mark the archive restored: %w", pg.Interpret(err))
	}
	if tag.RowsAffected() != archived {
		return nil, fmt.Errorf("marked %d archive rows restored, expected %d", tag.RowsAffected(), archived)
	}
	if err := writeLedger(ctx, tx, tr.target, restoreID, digest, counts); err != nil {
		return nil, err
	}
	return counts, nil
}

// insertOrder groups the tables to re-insert so that every group comes after the groups it
// refers to: parents first, the reverse of the deletion's order. Tables in a cycle of foreign
// keys (a self-referencing tree among them) form one group, inserted in one statement so that
// the constraints are checked once, at its end.
func insertOrder(tr *targetRestore) [][]*restoreTable {
	var ins []*restoreTable
	idx := map[pg.Table]int{}
	for _, rt := range tr.tables {
		if rt.action == config.ActionDelete && rt.rows > 0 {
			idx[rt.table.Name] = len(ins)
			ins = append(ins, rt)
		}
	}
	refs := make([][]int, len(ins))
	for i, rt := range ins {
		for _, fk := range tr.schema.Parents(rt.table.Name) {
			if j, ok := idx[fk.Parent]; ok && j != i {
				refs[i] = append(refs[i], j)
			}
		}
	}
	comp := sccs(len(ins), refs)
	groups := map[int][]int{}
	for i, c := range comp {
		groups[c] = append(groups[c], i)
	}
	done := map[int]bool{}
	var out [][]*restoreTable
	for len(done) < len(groups) {
		progressed := false
		for c := 0; c < len(groups); c++ {
			if done[c] {
				continue
			}
			ready := true
			for _, i := range groups[c] {
				for _, j := range refs[i] {
					if comp[j] != c && !done[comp[j]] {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			var g []*restoreTable
			for _, i := range groups[c] {
				g = append(g, ins[i])
			}
			out = append(out, g)
			done[c] = true
			progressed = true
		}
		if !progressed { // cannot happen: components form a DAG
			break
		}
	}
	return out
}

// insertGroup re-inserts a group's archived rows in one statement, every column as archived
// (identity columns included, generated columns recomputed), and returns each table's count.
func insertGroup(ctx context.Context, tx pgx.Tx, tr *targetRestore, delID int64, group []*restoreTable) ([]int64, error) {
	args := []any{delID, tr.target}
	stmts := make([]string, len(group))
	names := make([]string, len(group))
	for i, rt := range group {
		t := rt.table
		if len(rt.columns) == 0 {
			return nil, fmt.Errorf("restore %s: no archived column can be inserted", t.Name)
		}
		args = append(args, t.Name.Schema, t.Name.Name)
		cols := make([]string, len(rt.columns))
		for j, c := range rt.columns {
			cols[j] = "r." + pg.QuoteIdent(c)
		}
		stmts[i] = fmt.Sprintf(`INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE
			SELECT %s FROM tombstone.archive a CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, a.row) r
			WHERE a.request_id = $1 AND a.target = $2 AND a.table_schema = $%d AND a.table_name = $%d
			AND a.action = 'delete' AND a.restored_by IS NULL ORDER BY a.id`,
			t.Name.Quoted(), pg.QuoteIdents(rt.columns), strings.Join(cols, ", "), t.Name.Quoted(), len(args)-1, len(args))
		names[i] = t.Name.String()
	}
	if len(group) == 1 {
		tag, err := tx.Exec(ctx, stmts[0], args...)
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", names[0], pg.Interpret(err))
		}
		return []int64{tag.RowsAffected()}, nil
	}
	ctes := make([]string, len(group))
	sel := make([]string, len(group))
	for i := range group {
		ctes[i] = fmt.Sprintf("i%d AS (%s RETURNING 1)", i, stmts[i])
		sel[i] = fmt.Sprintf("(SELECT count(*) FROM i%d)", i)
	}
	out := make([]int64, len(group))
	dest := make([]any, len(group))
	for i := range out {
		dest[i] = &out[i]
	}
	if err := tx.QueryRow(ctx, "WITH "+strings.Join(ctes, ", ")+" SELECT "+strings.Join(sel, ", "), args...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("restore %s: %w", strings.Join(names, ", "), pg.Interpret(err))
	}
	return out, nil
}

// DeletedBy returns the latest done deletion of the kind's root with this key (its display
// key, or one of its primary-key values) that no done restore has undone, or pg.ErrNotFound.
// Previews use it to say "already deleted by request #N" instead of "not found".
func DeletedBy(ctx context.Context, db bun.IDB, kind, key string) (r *approval.Request, err error) {
	defer pg.Wrap(&err, "exec.DeletedBy(%q, %q)", kind, key)
	var ids []int64
	err = db.NewRaw(`SELECT r.id FROM requests r
		WHERE r.kind = ? AND r.kind_of_request = 'delete' AND r.state IN ('done', 'partial')
		  AND (r.root_key = ? OR ? = ANY(r.root_keys))
		  AND NOT EXISTS (SELECT 1 FROM requests x WHERE x.restores_request_id = r.id AND x.state = 'done')
		ORDER BY r.id DESC LIMIT 1`, kind, key, key).Scan(ctx, &ids)
	if err != nil {
		return nil, pg.Interpret(err)
	}
	if len(ids) == 0 {
		return nil, pg.ErrNotFound
	}
	return approval.Get(ctx, db, ids[0])
}
