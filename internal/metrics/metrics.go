// Package metrics exposes the console's Prometheus metrics at /metrics: HTTP request
// durations, executions and the rows they changed (counted as they happen), and gauges read
// from the console database at scrape time (requests by state, the job queue, undelivered
// notifications, the audit chain head). docs/operations.md lists every name.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// Metrics holds the console's collectors in a registry of its own. It implements
// exec.Observer. Safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	httpDuration *prometheus.HistogramVec
	executions   *prometheus.CounterVec
	execDuration *prometheus.HistogramVec
	rows         *prometheus.CounterVec
}

// New registers the collectors. db is the console database the gauges are read from at
// scrape time; nil leaves them out.
func New(db *bun.DB) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tombstone_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route and status.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "status"}),
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tombstone_executions_total",
			Help: "Executions that reached an outcome (done, failed, drifted).",
		}, []string{"outcome"}),
		execDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tombstone_execution_duration_seconds",
			Help:    "Time from start to outcome of an execution, by outcome.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600},
		}, []string{"outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tombstone_rows_affected_total",
			Help: "Rows changed by committed executions, by target and action (delete, soft, detach).",
		}, []string{"target", "action"}),
	}
	m.Registry.MustRegister(m.httpDuration, m.executions, m.execDuration, m.rows,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if db != nil {
		m.Registry.MustRegister(&dbCollector{db: db})
	}
	return m
}

// Finished counts an execution's outcome and its duration (exec.Observer).
func (m *Metrics) Finished(outcome approval.State, took time.Duration) {
	m.executions.WithLabelValues(string(outcome)).Inc()
	if took > 0 {
		m.execDuration.WithLabelValues(string(outcome)).Observe(took.Seconds())
	}
}

// Affected counts rows changed by a committed execution (exec.Observer).
func (m *Metrics) Affected(target, action string, rows int64) {
	m.rows.WithLabelValues(target, action).Add(float64(rows))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, Timeout: 10 * time.Second})
}

// Instrument times every request through next by route and status. The route is the path
// with numeric segments replaced by {id} and cut to two segments (/requests/{id}, /static,
// /kinds/tenant), and "unmatched" for a 404, so scanners cannot grow the label set.
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := NewStatusWriter(w)
		next.ServeHTTP(sw, r)
		route := Route(r.URL.Path)
		if sw.Status() == http.StatusNotFound {
			route = "unmatched"
		}
		m.httpDuration.WithLabelValues(route, strconv.Itoa(sw.Status())).Observe(time.Since(start).Seconds())
	})
}

// Route is the route label of a path (see Instrument).
func Route(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) > 2 {
		segs = segs[:2]
	}
	for i, s := range segs {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			segs[i] = "{id}"
		}
	}
	if segs[0] == "static" {
		segs = segs[:1]
	}
	return "/" + strings.Join(segs, "/")
}

// StatusWriter remembers the status a handler answered with (200 when it only wrote a body).
type StatusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// NewStatusWriter wraps w.
func NewStatusWriter(w http.ResponseWriter) *StatusWriter {
	return &StatusWriter{ResponseWriter: w, status: http.StatusOK}
}

// Status is the status written so far.
func (w *StatusWriter) Status() int { return w.status }

func (w *StatusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (flushing for htmx polls).
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// dbCollector reads the console database at scrape time.
type dbCollector struct{ db *bun.DB }

var (
	requestsDesc = prometheus.NewDesc("tombstone_requests",
		"Requests by state.", []string{"state"}, nil)
	runningAgeDesc = prometheus.NewDesc("tombstone_request_running_oldest_seconds",
		"Seconds since the oldest running request last changed state (0 when none runs).", nil, nil)
	queueDepthDesc = prometheus.NewDesc("tombstone_job_queue_depth",
		"Jobs waiting to run (available or retryable).", nil, nil)
	queueAgeDesc = prometheus.NewDesc("tombstone_job_oldest_age_seconds",
		"Seconds the oldest available job has waited past its scheduled time (0 when none).", nil, nil)
	notifyDesc = prometheus.NewDesc("tombstone_notifications_failing",
		"Notifications not delivered that have failed at least once.", nil, nil)
	auditHeadDesc = prometheus.NewDesc("tombstone_audit_head_seq",
		"Sequence number of the newest audit event.", nil, nil)
)

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{requestsDesc, runningAgeDesc, queueDepthDesc, queueAgeDesc, notifyDesc, auditHeadDesc} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	var rows []struct {
		State string `bun:"state"`
		N     int64  `bun:"n"`
	}
	if err := c.db.NewRaw("SELECT state, count(*) AS n FROM requests GROUP BY state").Scan(ctx, &rows); err != nil {
		ch <- prometheus.NewInvalidMetric(requestsDesc, pg.Interpret(err))
	} else {
		byState := map[string]int64{}
		for _, r := range rows {
			byState[r.State] = r.N
		}
		for _, s := range approval.States() {
			gauge(requestsDesc, float64(byState[string(s)]), string(s))
		}
	}

	var age float64
	if err := c.db.QueryRowContext(ctx, `SELECT coalesce(extract(epoch FROM now() - min(updated_at)), 0)::float8
		FROM requests WHERE state = 'running'`).Scan(&age); err != nil {
		ch <- prometheus.NewInvalidMetric(runningAgeDesc, pg.Interpret(err))
	} else {
		gauge(runningAgeDesc, age)
	}

	var depth, oldest float64
	err := c.db.QueryRowContext(ctx, `SELECT count(*)::float8,
			coalesce(extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE state = 'available')), 0)::float8
		FROM river_job WHERE state IN ('available', 'retryable')`).Scan(&depth, &oldest)
	switch {
	case pg.Code(err) == "42P01": // the job tables are not migrated yet: nothing queued
		gauge(queueDepthDesc, 0)
		gauge(queueAgeDesc, 0)
	case err != nil:
		ch <- prometheus.NewInvalidMetric(queueDepthDesc, pg.Interpret(err))
	default:
		gauge(queueDepthDesc, depth)
		gauge(queueAgeDesc, max(oldest, 0))
	}

	var failing float64
	if err := c.db.QueryRowContext(ctx, "SELECT count(*)::float8 FROM outbox WHERE sent_at IS NULL AND attempts > 0").Scan(&failing); err != nil {
		ch <- prometheus.NewInvalidMetric(notifyDesc, pg.Interpret(err))
	} else {
		gauge(notifyDesc, failing)
	}

	if seq, _, err := audit.Head(ctx, c.db); err != nil {
		ch <- prometheus.NewInvalidMetric(auditHeadDesc, err)
	} else {
		gauge(auditHeadDesc, float64(seq))
	}
}
