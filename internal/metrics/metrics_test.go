package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/metrics"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var _ exec.Observer = (*metrics.Metrics)(nil)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(b)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t)
	require.NoError(t, exec.MigrateJobs(context.Background(), db.Pool, nil))
	m := metrics.New(db.Bun)
	m.Finished(approval.Done, 2*time.Second)
	m.Affected("app", "delete", 42)

	h := m.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nope" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusSeeOther)
	}))
	for _, p := range []string{"/requests/12/approve", "/nope"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", p, nil))
	}

	out := scrape(t, m)
	for _, want := range []string{
		`tombstone_http_request_duration_seconds_count{route="/requests/{id}",status="303"} 1`,
		`tombstone_http_request_duration_seconds_count{route="unmatched",status="404"} 1`,
		`tombstone_executions_total{outcome="done"} 1`,
		`tombstone_execution_duration_seconds_count{outcome="done"} 1`,
		`tombstone_rows_affected_total{action="delete",target="app"} 42`,
		`tombstone_requests{state="running"} 0`,
		`tombstone_request_running_oldest_seconds 0`,
		`tombstone_job_queue_depth 0`,
		`tombstone_job_oldest_age_seconds 0`,
		`tombstone_notifications_failing 0`,
		`tombstone_audit_head_seq 0`,
	} {
		require.Contains(t, out, want)
	}
}

func TestRoute(t *testing.T) {
	t.Parallel()
	require.Equal(t, "/requests/{id}", metrics.Route("/requests/7/progress"))
	require.Equal(t, "/static", metrics.Route("/static/app.css"))
	require.Equal(t, "/", metrics.Route("/"))
	require.Equal(t, "/kinds/tenant", metrics.Route("/kinds/tenant/acme"))
}
