package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/metrics"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
	"github.com/tombstone-console/tombstone/internal/web"
)

// consolePoolSize is the console database pool of `console serve` (cmd/console's
// consolePoolSize), so that the pages queue for connections as they would in production.
const consolePoolSize = 20

// console is the web console wired as `console serve` wires it (web.New with the shared
// preview engine and the approval service, behind metrics.Instrument), listening on
// 127.0.0.1 over a fresh console database and a dataset's demo targets, with the session
// sweeper running. The executor, expirer and notifications are left out: nothing in the
// benchmark gives them work.
type console struct {
	URL    string
	DB     *pg.DB
	Config *config.Config
	Engine *preview.Engine
	// Statuses counts the answers by path and status, so that a load run can prove that
	// every page it timed was served with 200.
	Statuses *statusCounter
	// Warnings holds what the console logged at level warn and above.
	Warnings *lockedBuffer
}

// lockedBuffer is a buffer the console's logger writes to from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// take returns what was written since the last take, and forgets it.
func (l *lockedBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// startConsole starts the console for ds; it stops when tb ends.
func startConsole(tb testing.TB, ds *Dataset) *console {
	tb.Helper()
	ctx := context.Background()
	fresh := pgtest.Fresh(tb)
	db, err := pg.Open(ctx, pgtest.URLOf(fresh), pg.Options{ApplicationName: "tombstone console", MaxConns: consolePoolSize})
	if err != nil {
		tb.Fatalf("open the console database: %v", err)
	}
	tb.Cleanup(db.Close)
	cfg, err := exampleConfig(ds)
	if err != nil {
		tb.Fatal(err)
	}
	targets := pg.NewPools(targetDSNs(cfg), pg.Options{ApplicationName: "tombstone console", ConnectTimeout: 3 * time.Second})
	tb.Cleanup(targets.Close)
	engine := preview.NewEngine(cfg, targets, schema.NewCache(2*time.Second))
	// Logs are formatted as console serve formats them (text, level info: an access log line
	// per request), then dropped, except warnings and errors, kept to explain failed runs.
	warnings := &lockedBuffer{}
	log := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}),
		slog.NewTextHandler(warnings, &slog.HandlerOptions{Level: slog.LevelWarn}),
	))
	srv, err := web.New(web.Deps{Config: cfg, DB: db, Targets: targets, Logger: log, Engine: engine, Approval: approval.New(cfg)})
	if err != nil {
		tb.Fatalf("web.New: %v", err)
	}
	m := metrics.New(db.Bun)
	top := http.NewServeMux()
	top.Handle("GET /metrics", m.Handler())
	top.Handle("/", srv.Handler())
	statuses := &statusCounter{counts: map[string]map[int]int64{}}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen on 127.0.0.1: %v", err)
	}
	hs := &http.Server{
		Handler:           statuses.wrap(m.Instrument(top)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { _ = hs.Serve(ln) }()
	runCtx, stop := context.WithCancel(ctx)
	var sweep sync.WaitGroup
	sweep.Go(func() { srv.Sweep(runCtx, 10*time.Minute) })
	tb.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		stop()
		sweep.Wait()
	})
	return &console{URL: "http://" + ln.Addr().String(), DB: db, Config: cfg, Engine: engine, Statuses: statuses, Warnings: warnings}
}

// signIn signs in through the sign-in form, as a browser does, and returns the session
// cookie ("name=value") the console set.
func (c *console) signIn(name, password string) (string, error) {
	form := url.Values{"name": {name}, "password": {password}}
	req, err := http.NewRequest(http.MethodPost, c.URL+"/signin", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := noRedirects.Do(req)
	if err != nil {
		return "", fmt.Errorf("sign in as %s: %w", name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("sign in as %s: status %d, want 303", name, resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "tombstone" && ck.Value != "" {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", fmt.Errorf("sign in as %s: no session cookie in the answer", name)
}

// sessions creates users (role requester, as support staff are) and signs each in several
// times, n sessions in all: one per simulated client, as real operators each have their own
// session (and its row in the sessions table).
func (c *console) sessions(tb testing.TB, users, n int) (cookies []string, ids []int64) {
	tb.Helper()
	ctx := context.Background()
	for u := range users {
		name := fmt.Sprintf("support%d", u+1)
		pw := "benchmark-password-of-" + name
		user, err := auth.CreateUser(ctx, c.DB.Bun, auth.NewUser{Name: name, Role: auth.Requester, Password: pw})
		if err != nil {
			tb.Fatalf("create user %s: %v", name, err)
		}
		ids = append(ids, user.ID)
		for i := u; i < n; i += users {
			ck, err := c.signIn(name, pw)
			if err != nil {
				tb.Fatal(err)
			}
			cookies = append(cookies, ck)
		}
	}
	return cookies, ids
}

// get fetches path with a session cookie and returns the status and body.
func (c *console) get(path, cookie string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, c.URL+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Cookie", cookie)
	resp, err := noRedirects.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", path, err)
	}
	return resp.StatusCode, string(b), nil
}

var noRedirects = &http.Client{
	Timeout:       time.Minute,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// statusCounter counts answers by path and status, leaving out requests whose client had
// gone before the answer.
type statusCounter struct {
	mu     sync.Mutex
	counts map[string]map[int]int64
}

func (s *statusCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := metrics.NewStatusWriter(w)
		next.ServeHTTP(sw, r)
		if r.Context().Err() != nil {
			// The client went away before the answer (wrk closes its connections when a
			// run ends); wrk does not count the request either, whatever its status.
			return
		}
		s.mu.Lock()
		byStatus := s.counts[r.URL.Path]
		if byStatus == nil {
			byStatus = map[int]int64{}
			s.counts[r.URL.Path] = byStatus
		}
		byStatus[sw.Status()]++
		s.mu.Unlock()
	})
}

// take returns the counts for path since the last take, and forgets them.
func (s *statusCounter) take(path string) map[int]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts[path]
	delete(s.counts, path)
	return c
}

// wrkLoad is one wrk run: connections and threads against one URL for a duration, each
// request carrying the next of a thread's session cookies.
type wrkLoad struct {
	URL         string
	Cookies     []string
	Connections int
	Threads     int
	Duration    time.Duration
}

// wrkResult is what a wrk --latency run reports.
type wrkResult struct {
	P50, P99 time.Duration
	RPS      float64
	Requests int64
	// Errors are wrk's non-2xx/3xx answers plus its socket errors (connect, read, write,
	// timeout).
	Non2xx       int64
	SocketErrors int64
}

// wrkPath finds wrk, or fails with how to install it.
func wrkPath(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("wrk")
	if err != nil {
		tb.Fatalf("the console load benchmark needs wrk (HTTP load generator), which is not installed: on Debian, `apt-get install -y wrk` (%v)", err)
	}
	return p
}

// run runs wrk and parses its report. Only loopback URLs are accepted: the benchmark loads
// the console it started itself.
func (l wrkLoad) run(ctx context.Context, wrk, dir string) (wrkResult, string, error) {
	u, err := url.Parse(l.URL)
	if err != nil {
		return wrkResult{}, "", err
	}
	if u.Hostname() != "127.0.0.1" {
		return wrkResult{}, "", fmt.Errorf("wrk: refusing to load %s: only 127.0.0.1 is loaded", u.Host)
	}
	script := filepath.Join(dir, "sessions.lua")
	if err := os.WriteFile(script, []byte(sessionScript(l.Cookies, l.Threads)), 0o600); err != nil {
		return wrkResult{}, "", err
	}
	args := []string{
		"-c", strconv.Itoa(l.Connections), "-t", strconv.Itoa(l.Threads),
		"-d", strconv.Itoa(max(1, int(l.Duration.Round(time.Second).Seconds()))) + "s",
		// A long timeout: wrk leaves answers slower than its timeout (default 2s) out of the
		// latency distribution and counts them as socket errors instead.
		"--timeout", "60s", "--latency", "-s", script, l.URL,
	}
	cmd := exec.CommandContext(ctx, wrk, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, string(out), fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, out)
	}
	res, err := parseWrk(string(out))
	return res, string(out), err
}

// sessionScript is a wrk Lua script giving each thread its own share of the cookies and
// sending them in turn, so that concurrent requests rarely share a session.
func sessionScript(cookies []string, threads int) string {
	var b strings.Builder
	b.WriteString("local cookies = {\n")
	for _, c := range cookies {
		fmt.Fprintf(&b, "  %q,\n", c)
	}
	fmt.Fprintf(&b, "}\nlocal threads = %d\n", threads)
	b.WriteString(`local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
local i = 0
function request()
  local per = math.max(1, math.floor(#cookies / threads))
  local first = (id % threads) * per
  i = i + 1
  local c = cookies[((first + (i % per)) % #cookies) + 1]
  return wrk.format(nil, nil, {["Cookie"] = c})
end
`)
	return b.String()
}

var (
	wrkPercentile = regexp.MustCompile(`^\s*(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	wrkRequests   = regexp.MustCompile(`^\s*(\d+) requests in `)
	wrkRPS        = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)\s*$`)
	wrkNon2xx     = regexp.MustCompile(`^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$`)
	wrkSocket     = regexp.MustCompile(`^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$`)
)

// parseWrk reads wrk's --latency report: the 50% and 99% lines of the latency distribution,
// the request count, Requests/sec, and the error lines wrk prints only when there are errors.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var have50, have99, haveRPS, haveN bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := wrkPercentile.FindStringSubmatch(line); m != nil {
			d, err := wrkDuration(m[2], m[3])
			if err != nil {
				return r, err
			}
			if m[1] == "50" {
				r.P50, have50 = d, true
			} else {
				r.P99, have99 = d, true
			}
		} else if m := wrkRequests.FindStringSubmatch(line); m != nil {
			r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
			haveN = true
		} else if m := wrkRPS.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: Requests/sec %q: %w", m[1], err)
			}
			r.RPS, haveRPS = v, true
		} else if m := wrkNon2xx.FindStringSubmatch(line); m != nil {
			r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		} else if m := wrkSocket.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				r.SocketErrors += n
			}
		}
	}
	var missing []string
	for name, ok := range map[string]bool{"50% latency": have50, "99% latency": have99, "Requests/sec": haveRPS, "request count": haveN} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return r, fmt.Errorf("wrk: no %s in its report (was it run with --latency?):\n%s", strings.Join(missing, ", "), out)
	}
	if r.Requests == 0 {
		return r, errors.New("wrk: no request completed")
	}
	return r, nil
}

// wrkDuration converts a wrk latency ("812.00us", "1.23ms", "2.01s") to a duration.
func wrkDuration(v, unit string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("wrk: latency %q: %w", v+unit, err)
	}
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	return time.Duration(f * float64(scale)), nil
}
