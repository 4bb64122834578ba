package web

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// healthz says the process is alive. It touches nothing else.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// Readiness is the /readyz answer.
type Readiness struct {
	Ready   bool                `json:"ready"`
	Console DBStatus            `json:"console"`
	Targets map[string]DBStatus `json:"targets"`
}

// DBStatus is one database's health.
type DBStatus struct {
	OK            bool   `json:"ok"`
	Error         string `json:"error,omitempty"`
	ServerVersion string `json:"server_version,omitempty"`
	// MaxPreparedTransactions > 0 allows two-phase commit across targets.
	MaxPreparedTransactions int  `json:"max_prepared_transactions"`
	TwoPhaseCommit          bool `json:"two_phase_commit"`
	// PendingMigrations is set for the console database.
	PendingMigrations []string `json:"pending_migrations,omitempty"`
}

// readyz checks the console database and every target concurrently, each within a few
// seconds, and answers 503 when any is down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := s.Readiness(r.Context())
	w.Header().Set("Content-Type", "application/json")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rd)
}

// Readiness probes the console database and the targets, concurrently, within 5 seconds.
func (s *Server) Readiness(ctx context.Context) Readiness {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rd := Readiness{Ready: true, Targets: map[string]DBStatus{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		st := probe(ctx, s.db)
		if st.OK {
			pending, err := pg.Pending(ctx, s.db.Bun, pg.ConsoleMigrations())
			if err != nil {
				st.OK, st.Error = false, "migration status: "+err.Error()
			} else if len(pending) > 0 {
				st.OK, st.Error, st.PendingMigrations = false, "migrations pending; run console migrate", pending
			}
		}
		mu.Lock()
		rd.Console = st
		rd.Ready = rd.Ready && st.OK
		mu.Unlock()
	})
	wg.Go(func() {
		targets := s.probeTargets(ctx)
		mu.Lock()
		for name, st := range targets {
			rd.Targets[name] = st
			rd.Ready = rd.Ready && st.OK
		}
		mu.Unlock()
	})
	wg.Wait()
	return rd
}

// probeTargets probes every target concurrently, within ctx's deadline. It is what /readyz
// and the admin targets page report. A target whose pool cannot be opened is not OK, with
// the reason.
func (s *Server) probeTargets(ctx context.Context) map[string]DBStatus {
	out := map[string]DBStatus{}
	if s.targets == nil {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range s.targets.Names() {
		wg.Go(func() {
			var st DBStatus
			db, err := s.targets.DB(ctx, name)
			if err != nil {
				st.Error = err.Error()
			} else {
				st = probe(ctx, db)
			}
			mu.Lock()
			out[name] = st
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// probe reads a database's version and whether it allows prepared transactions.
func probe(ctx context.Context, db *pg.DB) DBStatus {
	var st DBStatus
	err := db.Pool.QueryRow(ctx,
		"SELECT current_setting('server_version'), current_setting('max_prepared_transactions')::int").
		Scan(&st.ServerVersion, &st.MaxPreparedTransactions)
	if err != nil {
		st.Error = pg.Interpret(err).Error()
		return st
	}
	st.OK = true
	st.TwoPhaseCommit = st.MaxPreparedTransactions > 0
	return st
}
