package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/devdb"
)

// suite is what TestMain sets up: the binary and one cluster. Scenarios run
// one after another (an outage of the cluster would hit them all), each in a
// database of its own.
var suite struct {
	bin     string
	cluster *devdb.Cluster
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "tasker-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	suite.bin = filepath.Join(dir, "tasker")
	// The module root is two directories up from this package.
	build := exec.CommandContext(ctx, "go", "build", "-o", suite.bin, "./cmd/tasker")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building tasker: %v\n%s", err, out)
		return 1
	}
	// Durable, so that an immediate shutdown is the crash it stands for.
	suite.cluster, err = devdb.Start(ctx, devdb.Options{Durable: true, Settings: map[string]string{"max_connections": "200"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = suite.cluster.Stop(context.Background()) }()
	return m.Run()
}

// proc is one tasker process the test starts, kills and restarts.
type proc struct {
	name string
	args []string
	env  []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(suite.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s: %v", p.name, err)
	}
	<-exited
}

// stop asks the process to shut down (SIGTERM) and waits for it.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, p *proc, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !p.alive() {
			t.Fatalf("%s exited while starting:\n%s", p.name, p.logTail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s (%v):\n%s", p.name, timeout, err, p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stack is one scenario's server and worker over a database of their own.
type stack struct {
	db             string
	url            string
	pool           *pgxpool.Pool
	server, worker *proc
	apiURL         string
	workerURL      string
}

func newStack(t *testing.T, name string, env ...string) *stack {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, suite.cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	db := "faults_" + name
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close(ctx)
	s := &stack{db: db, url: suite.cluster.URL(db)}
	dir := t.TempDir()
	// The test profile (warn-level logs, no export) unless env says otherwise.
	env = append([]string{"TASKER_ENV=test", "DATABASE_URL=" + s.url}, env...)
	apiAddr, workerAddr := freeAddr(t), freeAddr(t)
	s.apiURL, s.workerURL = "http://"+apiAddr, "http://"+workerAddr
	s.server = &proc{name: "server", args: []string{"server", "--examples", "--listen", apiAddr, "--max-conns", "20"},
		env: env, log: filepath.Join(dir, "server.log")}
	// A short lease keeps recovery from a killed worker within seconds.
	s.worker = &proc{name: "worker", args: []string{"worker", "--examples", "--listen", workerAddr, "--lease", "3s",
		"--concurrency", "8", "--max-conns", "20"}, env: env, log: filepath.Join(dir, "worker.log")}
	s.server.start(t)
	t.Cleanup(s.server.stop)
	waitReady(t, s.server, s.apiURL+"/health/ready", time.Minute)
	s.worker.start(t)
	t.Cleanup(s.worker.stop)
	waitReady(t, s.worker, s.workerURL+"/health/ready", time.Minute)
	s.pool, err = pgxpool.New(ctx, s.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.pool.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s\nworker log:\n%s", s.server.logTail(), s.worker.logTail())
		}
	})
	return s
}

// load is a stream of task creations from retrying clients. Each request has
// its own idempotency key and is sent again, with the same key, until the API
// answers it: a client that never learns whether its request was taken.
type load struct {
	mu      sync.Mutex
	created map[string]uuid.UUID // idempotency key → task
	sent    int                  // POSTs, retries included
	errs    []error
	cond    *sync.Cond
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(t *testing.T, apiURL string, clients int) *load {
	l := &load{created: map[string]uuid.UUID{}, stop: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	c := client.New(apiURL, client.WithCreateRetries(0), client.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	for range clients {
		l.wg.Go(func() { l.client(c) })
	}
	t.Cleanup(l.finish)
	return l
}

func (l *load) client(c *client.Client) {
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		req, err := client.NewTaskRequest("linear_workflow", "mathematical_sequence", "", map[string]int{"even_number": 2})
		if err != nil {
			l.fail(err)
			return
		}
		req.IdempotencyKey = uuid.NewString()
		// Every request is answered before the client stops: a request that
		// was given up on would leave "submitted" undefined.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			l.mu.Lock()
			l.sent++
			l.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			task, err := c.CreateTask(ctx, req)
			cancel()
			if err == nil {
				l.mu.Lock()
				l.created[req.IdempotencyKey] = task.TaskUUID
				l.cond.Broadcast()
				l.mu.Unlock()
				break
			}
			var apiErr *client.APIError
			if errors.As(err, &apiErr) && apiErr.Status < 500 {
				l.fail(fmt.Errorf("request %s answered %w", req.IdempotencyKey, err))
				return
			}
			if time.Now().After(deadline) {
				l.fail(fmt.Errorf("request %s not answered within 2 minutes: %w", req.IdempotencyKey, err))
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
	l.cond.Broadcast()
}

// waitCreated blocks until n more tasks than now have been created.
func (l *load) waitCreated(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	want := len(l.created) + n
	timer := time.AfterFunc(2*time.Minute, func() {
		l.mu.Lock()
		l.errs = append(l.errs, fmt.Errorf("fewer than %d tasks created within 2 minutes", want))
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer timer.Stop()
	for len(l.created) < want && len(l.errs) == 0 {
		l.cond.Wait()
	}
	if len(l.errs) > 0 {
		t.Fatalf("load: %v", errors.Join(l.errs...))
	}
}

// finish stops the clients once their current request is answered.
func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// result is one row of the report.
type result struct {
	scenario                           string
	submitted, tasks, completed, dupes int
	reruns                             int
	posts                              int
	recovery                           time.Duration
}

var (
	reportMu sync.Mutex
	report   []result
)

// scenario runs load, applies fault (which returns once the fault is lifted),
// keeps the load on until tasks are created again, then checks the outcome.
func scenario(t *testing.T, name string, fault func(t *testing.T, s *stack), env ...string) {
	t.Helper()
	s := newStack(t, name, env...)
	l := startLoad(t, s.apiURL, 4)
	l.waitCreated(t, 20)
	fault(t, s)
	lifted := time.Now()
	l.waitCreated(t, 20)
	l.finish()
	if len(l.errs) > 0 {
		t.Fatalf("load: %v", errors.Join(l.errs...))
	}

	ctx := context.Background()
	submitted := len(l.created)
	// Every task completes.
	deadline := time.Now().Add(2 * time.Minute)
	var tasks, completed int
	for {
		if err := s.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'complete') FROM tasker.tasks`).
			Scan(&tasks, &completed); err != nil {
			t.Fatal(err)
		}
		if completed == tasks || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var keys, reruns, reclaims, queued int
	var firstDone, backlogDone *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT idempotency_key),
			(SELECT coalesce(sum(attempts - 1), 0) FROM tasker.workflow_steps WHERE attempts > 1),
			(SELECT count(*) FROM tasker.workflow_step_transitions WHERE reason = 'lease_expired_reclaim'),
			(SELECT count(*) FROM tasker.queue_messages),
			(SELECT min(completed_at) FROM tasker.tasks WHERE completed_at > $1),
			(SELECT max(completed_at) FROM tasker.tasks WHERE created_at <= $1)
		FROM tasker.tasks`, lifted).Scan(&keys, &reruns, &reclaims, &queued, &firstDone, &backlogDone); err != nil {
		t.Fatal(err)
	}
	r := result{scenario: name, submitted: submitted, tasks: tasks, completed: completed, dupes: tasks - keys,
		reruns: reruns, posts: l.sent}
	// Recovery: from the fault's end until every task created before it
	// had completed (zero when none was held up past the end).
	if backlogDone != nil {
		r.recovery = max(backlogDone.Sub(lifted), 0)
	}
	reportMu.Lock()
	report = append(report, r)
	reportMu.Unlock()

	if tasks != submitted || keys != submitted {
		t.Errorf("%d requests answered, %d tasks with %d distinct keys: not exactly one task per request", submitted, tasks, keys)
	}
	for key, id := range l.created {
		var got string
		if err := s.pool.QueryRow(ctx, `SELECT idempotency_key FROM tasker.tasks WHERE task_uuid = $1`, id).Scan(&got); err != nil || got != key {
			t.Errorf("answered task %s of key %s: stored key %q (%v)", id, key, got, err)
		}
	}
	// The example handlers never fail, so a step runs again only when its
	// lease was lost and another claim took it over.
	if reruns != reclaims {
		t.Errorf("%d handler re-runs but %d lease-expired reclaims: a handler ran again without losing its lease", reruns, reclaims)
	}
	if completed != tasks {
		t.Errorf("%d of %d tasks complete two minutes after the load ended", completed, tasks)
	}
	if queued != 0 {
		t.Errorf("%d messages still queued", queued)
	}
	if firstDone == nil {
		t.Errorf("no task completed after the fault was lifted")
	}
	for _, p := range []*proc{s.server, s.worker} {
		if !p.alive() {
			t.Errorf("%s exited:\n%s", p.name, p.logTail())
		}
	}
}

func terminateBackends(t *testing.T, db string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), suite.cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no connection to terminate: the processes are not connected")
	}
}

// blackhole accepts connections and never answers: a hung collector. Close
// makes the address refuse connections: a collector that is gone.
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newBlackhole(t *testing.T) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) close() {
	_ = b.ln.Close()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	collector := newBlackhole(t)
	for _, sc := range []struct {
		name  string
		env   []string
		fault func(t *testing.T, s *stack)
	}{
		{name: "worker_sigkill", fault: func(t *testing.T, s *stack) {
			s.worker.kill(t)
			s.worker.start(t)
		}},
		{name: "orchestrator_sigkill", fault: func(t *testing.T, s *stack) {
			s.server.kill(t)
			s.server.start(t)
		}},
		{name: "postgres_restart_fast", fault: func(t *testing.T, _ *stack) {
			if err := suite.cluster.Restart(ctx, devdb.ShutdownFast); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "postgres_restart_immediate", fault: func(t *testing.T, _ *stack) {
			if err := suite.cluster.Restart(ctx, devdb.ShutdownImmediate); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "pg_terminate_backend", fault: func(t *testing.T, s *stack) {
			terminateBackends(t, s.db)
		}},
		{name: "postgres_stopped_15s", fault: func(t *testing.T, _ *stack) {
			if err := suite.cluster.Halt(ctx, devdb.ShutdownFast); err != nil {
				t.Fatal(err)
			}
			// The outage itself: its length is the scenario, not a wait for a result.
			time.Sleep(15 * time.Second)
			if err := suite.cluster.Resume(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{
			name: "otlp_collector_unreachable",
			// Export on, to a collector that accepts and never answers; the
			// fault then takes it away entirely (connections refused).
			env: []string{"TASKER_TELEMETRY_ENABLED=true", "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + collector.ln.Addr().String(),
				"OTEL_EXPORTER_OTLP_TIMEOUT=1000", "OTEL_METRIC_EXPORT_INTERVAL=1000"},
			fault: func(*testing.T, *stack) { collector.close() },
		},
	} {
		t.Run(sc.name, func(t *testing.T) { scenario(t, sc.name, sc.fault, sc.env...) })
	}
	printReport(t)
}

func printReport(t *testing.T) {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(w, "scenario\tsubmitted\ttasks\tcompleted\tduplicates\tre-runs\tPOSTs\trecovery\t")
	reportMu.Lock()
	defer reportMu.Unlock()
	for _, r := range report {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", r.scenario, r.submitted, r.tasks, r.completed, r.dupes,
			r.reruns, r.posts, r.recovery.Round(10*time.Millisecond))
	}
	_ = w.Flush()
	// Markdown-ready, for docs/reliability.md.
	t.Log("\n" + strings.TrimRight(b.String(), "\n"))
	fmt.Println(markdown())
}

func markdown() string {
	var b strings.Builder
	b.WriteString("| scenario | submitted | tasks | completed | duplicates | handler re-runs | POSTs (with retries) | recovery |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range report {
		b.WriteString("| " + r.scenario + " | " + strconv.Itoa(r.submitted) + " | " + strconv.Itoa(r.tasks) + " | " +
			strconv.Itoa(r.completed) + " | " + strconv.Itoa(r.dupes) + " | " + strconv.Itoa(r.reruns) + " | " +
			strconv.Itoa(r.posts) + " | " + r.recovery.Round(10*time.Millisecond).String() + " |\n")
	}
	return b.String()
}
