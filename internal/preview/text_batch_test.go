package preview_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/preview"
)

func TestBatchNoteSaysHowABatchedKindRuns(t *testing.T) {
	t.Parallel()
	p := &preview.Preview{Kind: "tenant", Action: "delete", Exact: true,
		Root:   preview.Root{Table: "public.tenants", Key: "1", Label: "Acme"},
		Tree:   &preview.Node{Table: "public.tenants", Action: "delete", Rows: 1},
		Totals: preview.Totals{Delete: 2_400_001, Detach: 30, Keep: 7, Tables: 4}}
	batched := &config.Kind{Name: "tenant", Execution: config.ExecBatched, BatchRows: 10000}
	note := preview.BatchNote(batched, p)
	require.Equal(t, "Runs in about 241 batches of at most 10,000 rows; not atomic; the root is hidden first", note,
		"2,400,031 changed rows (kept rows do not count)")
	require.Empty(t, preview.BatchNote(&config.Kind{Name: "tenant", Execution: config.ExecSingle}, p))
	require.Empty(t, preview.BatchNote(nil, p))
	small := *p
	small.Totals = preview.Totals{Delete: 1}
	require.Contains(t, preview.BatchNote(batched, &small), "about 1 batch of at most")

	var out bytes.Buffer
	require.NoError(t, preview.WriteText(&out, p, note))
	require.Contains(t, out.String(), "\n"+note+"\n")
	out.Reset()
	require.NoError(t, preview.WriteText(&out, p, ""))
	require.NotContains(t, out.String(), "batches")
}
