package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/taskerhq/tasker/client"
)

// SoakConfig configures RunSoak. Zero values mean the documented default.
type SoakConfig struct {
	// Binary is the tasker executable run as `tasker server` and `tasker
	// worker --examples`. Required.
	Binary string
	// DatabaseURL is the database both processes use. Required.
	DatabaseURL string
	// Duration is how long tasks are created. Default 10 minutes.
	Duration time.Duration
	// Interval is the time between samples. Default 10 s.
	Interval time.Duration
	// Rate is tasks created per second. Default 20.
	Rate float64
	// Namespace and Name are the template; default linear_workflow/mathematical_sequence.
	Namespace, Name string
	// LogDir receives server.log and worker.log. Default: a temp dir, removed after.
	LogDir string
	// OnSample, when set, is called with each sample as it is taken.
	OnSample func(SoakSample)
}

func (c SoakConfig) withDefaults() SoakConfig {
	if c.Duration == 0 {
		c.Duration = 10 * time.Minute
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Rate == 0 {
		c.Rate = 20
	}
	if c.Namespace == "" {
		c.Namespace, c.Name = "linear_workflow", "mathematical_sequence"
	}
	return c
}

func (c SoakConfig) validate() error {
	switch {
	case c.Binary == "":
		return errors.New("soak config: Binary is required")
	case c.DatabaseURL == "":
		return errors.New("soak config: DatabaseURL is required")
	case c.Duration < 0 || c.Interval <= 0 || c.Interval > c.Duration:
		return fmt.Errorf("soak config: Interval (%s) must be positive and at most Duration (%s)", c.Interval, c.Duration)
	case c.Rate <= 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate):
		return fmt.Errorf("soak config: Rate must be a positive number, got %v", c.Rate)
	}
	return nil
}

// ProcessSample is one process at one moment, from its own /metrics and the
// database's view of its connections.
type ProcessSample struct {
	RSSBytes   float64 `json:"rss_bytes"`
	Goroutines float64 `json:"goroutines"`
	OpenFDs    float64 `json:"open_fds"`
	// DBConns counts the process's sessions in pg_stat_activity.
	DBConns int `json:"db_connections"`
}

// SoakSample is everything measured at one moment.
type SoakSample struct {
	Elapsed   time.Duration    `json:"elapsed_ns"`
	Server    ProcessSample    `json:"server"`
	Worker    ProcessSample    `json:"worker"`
	Created   int64            `json:"tasks_created"`
	Completed int64            `json:"tasks_completed"`
	Queued    int64            `json:"queue_messages"`
	Tables    map[string]int64 `json:"table_bytes"` // total relation size (with indexes and TOAST) per tasker table
}

// SoakReport is the run's samples and their trend.
type SoakReport struct {
	Config  SoakConfig   `json:"-"`
	Samples []SoakSample `json:"samples"`
	// ServerRSSSlope and WorkerRSSSlope are least-squares slopes of RSS over
	// the second half of the run, in bytes per minute: warm-up growth is
	// not a leak, a steady climb afterwards is.
	ServerRSSSlope float64 `json:"server_rss_slope_bytes_per_min"`
	WorkerRSSSlope float64 `json:"worker_rss_slope_bytes_per_min"`
	MaxServerRSS   float64 `json:"max_server_rss_bytes"`
	MaxWorkerRSS   float64 `json:"max_worker_rss_bytes"`
	Errors         int64   `json:"create_errors"`
}

// RunSoak starts a server and a worker process, creates tasks at a steady
// rate for Duration, and samples both processes and the database every
// Interval. The processes are stopped (SIGTERM) at the end.
func RunSoak(ctx context.Context, cfg SoakConfig) (_ *SoakReport, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logDir := cfg.LogDir
	if logDir == "" {
		if logDir, err = os.MkdirTemp("", "tasker-soak-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(logDir)
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connecting to the soak database: %w", err)
	}
	defer pool.Close()

	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	workerAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	server, err := startSoakProc(cfg, logDir, "server", "tasker-soak-server",
		"server", "--examples", "--listen", apiAddr)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, server.stop()) }()
	if err := waitHTTP(ctx, "http://"+apiAddr+"/health/ready", server); err != nil {
		return nil, err
	}
	worker, err := startSoakProc(cfg, logDir, "worker", "tasker-soak-worker",
		"worker", "--examples", "--listen", workerAddr)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, worker.stop()) }()
	if err := waitHTTP(ctx, "http://"+workerAddr+"/health/ready", worker); err != nil {
		return nil, err
	}

	rep := &SoakReport{Config: cfg}
	c := client.New("http://" + apiAddr)
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var created, failed int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			req, err := client.NewTaskRequest(cfg.Namespace, cfg.Name, "", map[string]int{"even_number": 2})
			if err == nil {
				_, err = c.CreateTask(runCtx, req)
			}
			mu.Lock()
			if err != nil && runCtx.Err() == nil {
				failed++
			} else if err == nil {
				created++
			}
			mu.Unlock()
		}
	})
	defer wg.Wait()

	start := time.Now()
	sample := func() error {
		s := SoakSample{Elapsed: time.Since(start)}
		var err error
		if s.Server, err = processSample(ctx, pool, "http://"+apiAddr+"/metrics", "tasker-soak-server"); err != nil {
			return fmt.Errorf("sampling the server: %w", err)
		}
		if s.Worker, err = processSample(ctx, pool, "http://"+workerAddr+"/metrics", "tasker-soak-worker"); err != nil {
			return fmt.Errorf("sampling the worker: %w", err)
		}
		if s.Tables, s.Completed, s.Queued, err = databaseSample(ctx, pool); err != nil {
			return err
		}
		mu.Lock()
		s.Created = created
		mu.Unlock()
		rep.Samples = append(rep.Samples, s)
		if cfg.OnSample != nil {
			cfg.OnSample(s)
		}
		return nil
	}
	if err := sample(); err != nil {
		return nil, err
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for runCtx.Err() == nil {
		select {
		case <-runCtx.Done():
		case <-tick.C:
			if err := sample(); err != nil {
				return nil, err
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	wg.Wait()
	if err := sample(); err != nil {
		return nil, err
	}
	rep.Errors = failed
	rep.summarize()
	return rep, nil
}

func (r *SoakReport) summarize() {
	half := r.Samples[len(r.Samples)/2:]
	mins := make([]float64, len(half))
	srv, wrk := make([]float64, len(half)), make([]float64, len(half))
	for i, s := range half {
		mins[i] = s.Elapsed.Minutes()
		srv[i], wrk[i] = s.Server.RSSBytes, s.Worker.RSSBytes
	}
	r.ServerRSSSlope, r.WorkerRSSSlope = slope(mins, srv), slope(mins, wrk)
	for _, s := range r.Samples {
		r.MaxServerRSS = max(r.MaxServerRSS, s.Server.RSSBytes)
		r.MaxWorkerRSS = max(r.MaxWorkerRSS, s.Worker.RSSBytes)
	}
}

// slope is the least-squares slope of y over x (0 with fewer than 2 points).
func slope(x, y []float64) float64 {
	n := float64(len(x))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx, sy, sxx, sxy = sx+x[i], sy+y[i], sxx+x[i]*x[i], sxy+x[i]*y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// processSample scrapes a process's runtime series and counts its sessions.
func processSample(ctx context.Context, pool *pgxpool.Pool, metricsURL, appName string) (ProcessSample, error) {
	var s ProcessSample
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return s, err
	}
	req.Header.Set("Accept", "text/plain") // the text format expfmt parses
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return s, fmt.Errorf("parsing %s: %w", metricsURL, err)
	}
	gauge := func(name string) float64 {
		f, ok := families[name]
		if !ok || len(f.GetMetric()) == 0 {
			return math.NaN()
		}
		m := f.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetUntyped().GetValue()
	}
	s.RSSBytes, s.Goroutines, s.OpenFDs = gauge("process_resident_memory_bytes"), gauge("go_goroutines"), gauge("process_open_fds")
	err = pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, appName).Scan(&s.DBConns)
	return s, err
}

func databaseSample(ctx context.Context, pool *pgxpool.Pool) (tables map[string]int64, completed, queued int64, err error) {
	rows, err := pool.Query(ctx, `SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables WHERE schemaname = 'tasker'`)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("reading table sizes: %w", err)
	}
	tables = map[string]int64{}
	for rows.Next() {
		var name string
		var size int64
		if err := rows.Scan(&name, &size); err != nil {
			rows.Close()
			return nil, 0, 0, err
		}
		tables[name] = size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, 0, err
	}
	err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasker.tasks WHERE state = 'complete'),
		(SELECT count(*) FROM tasker.queue_messages)`).Scan(&completed, &queued)
	return tables, completed, queued, err
}

type soakProc struct {
	name   string
	cmd    *exec.Cmd
	exited chan error
	log    string
}

// startSoakProc runs the binary with the database URL naming the process
// (application_name), so its connections can be counted apart.
func startSoakProc(cfg SoakConfig, logDir, name, appName string, args ...string) (*soakProc, error) {
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("soak: database URL: %w", err)
	}
	q := u.Query()
	q.Set("application_name", appName)
	u.RawQuery = q.Encode()
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Binary, args...)
	// Production profile, no export: what a deployment without a collector runs.
	cmd.Env = append(os.Environ(), "DATABASE_URL="+u.String(), "TASKER_TELEMETRY_ENABLED=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &soakProc{name: name, cmd: cmd, exited: make(chan error, 1), log: logPath}
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.exited <- err
	}()
	return p, nil
}

func (p *soakProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			return fmt.Errorf("%s: %w (log %s)", p.name, err, p.log)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within 30s of SIGTERM (log %s)", p.name, p.log)
	}
}

func waitHTTP(ctx context.Context, u string, p *soakProc) error {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			tail, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited while starting: %v\n%s", p.name, err, tail)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s within a minute (log %s)", p.name, u, p.log)
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// WriteSoakTable prints one line per sample.
func WriteSoakTable(w io.Writer, s SoakSample, header bool) {
	if header {
		fmt.Fprintf(w, "%8s  %9s %6s %5s  %9s %6s %5s  %8s %8s %6s  %9s\n",
			"elapsed", "srv RSS", "gor", "conns", "wrk RSS", "gor", "conns", "created", "complete", "queued", "tables")
	}
	var total int64
	for _, b := range s.Tables {
		total += b
	}
	mb := func(b float64) string { return fmt.Sprintf("%.1f MB", b/(1<<20)) }
	fmt.Fprintf(w, "%8s  %9s %6.0f %5d  %9s %6.0f %5d  %8d %8d %6d  %9s\n",
		s.Elapsed.Round(time.Second), mb(s.Server.RSSBytes), s.Server.Goroutines, s.Server.DBConns,
		mb(s.Worker.RSSBytes), s.Worker.Goroutines, s.Worker.DBConns, s.Created, s.Completed, s.Queued, mb(float64(total)))
}
