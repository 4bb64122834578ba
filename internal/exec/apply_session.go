package exec

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// execWorkMem is the work_mem the target transaction runs with when the server's is lower.
// Computing the sets de-duplicates keys (UNION, EXCEPT, IN) in hash tables that grow with the
// cascade; PostgreSQL's default of 4MB spills them to disk from about a hundred thousand keys
// per table, which made those steps several times slower. The setting is local to the
// transaction and bounds each hash or sort of this one session.
const execWorkMem = "64MB"

// raiseWorkMem sets work_mem to execWorkMem for the rest of tx, unless it is already larger.
func raiseWorkMem(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT set_config('work_mem', $1, true)
		WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes($1)`, execWorkMem)
	if err != nil {
		return fmt.Errorf("set work_mem: %w", pg.Interpret(err))
	}
	return nil
}
