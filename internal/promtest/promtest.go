// Package promtest runs a real Prometheus for a test: it scrapes the test's
// /metrics endpoints every second, evaluates the project's alert rules, and
// answers PromQL through its HTTP API, so dashboards, alerts and metric names
// are tested against the real query engine rather than string matching.
//
// The binaries are Debian's prometheus package (/usr/bin/prometheus and
// /usr/bin/promtool, Prometheus 2.42), installed by scripts/test-setup.sh. A
// missing binary fails the test: a skipped metrics test in CI would look like
// a passing one.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// installHint says how to get the binaries.
	installHint = "install Debian's prometheus package: run scripts/test-setup.sh (as root it runs `apt-get install -y --no-install-recommends prometheus`)"
	// startTimeout covers a cold start on a busy 2-core CI machine;
	// Prometheus is normally ready in about 0.2 s.
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	// startAttempts covers the race between probing a free port and
	// Prometheus binding it, which parallel test packages can lose.
	startAttempts = 3
	// pollInterval is how often WaitForSeries asks again.
	pollInterval = 100 * time.Millisecond
)

// Binary returns the path of the prometheus server: /usr/bin/prometheus
// (Debian), else the first prometheus on PATH; an error with the install
// hint when there is none.
func Binary() (string, error) { return findBinary("prometheus") }

// PromtoolBinary returns the path of promtool, found like Binary.
func PromtoolBinary() (string, error) { return findBinary("promtool") }

func findBinary(name string) (string, error) {
	deb := "/usr/bin/" + name
	if st, err := os.Stat(deb); err == nil && !st.IsDir() {
		return deb, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found (neither %s nor on PATH): %s", name, deb, installHint)
}

// Prometheus is a running Prometheus server listening on 127.0.0.1 only,
// with its TSDB in a temporary directory of the test.
type Prometheus struct {
	addr       string
	configPath string
	client     *http.Client
	log        *syncBuffer
}

// Start runs Prometheus for the rest of the test and stops it in t.Cleanup.
// targets maps a scrape job name to the host:port whose /metrics it scrapes
// (a full URL such as http://127.0.0.1:8080/custom/path also works); every
// target is scraped each second. ruleFiles are loaded as rule files (paths
// relative to the working directory) and evaluated each second.
//
// Start fails the test (never skips it) when the prometheus binary is
// missing.
func Start(t testing.TB, targets map[string]string, ruleFiles ...string) *Prometheus {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	var rules []string
	for _, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatalf("promtest: rule file %s: %v", f, err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("promtest: rule file: %v", err)
		}
		rules = append(rules, abs)
	}
	var lastErr error
	for range startAttempts {
		p, err := start(t, bin, targets, rules)
		if err == nil {
			return p
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("promtest: %v", lastErr)
	return nil
}

var errPortTaken = errors.New("port taken")

func start(t testing.TB, bin string, targets map[string]string, rules []string) (*Prometheus, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	cfg, err := configYAML(targets, rules)
	if err != nil {
		return nil, err
	}
	p := &Prometheus{
		addr:       "127.0.0.1:" + strconv.Itoa(port),
		configPath: filepath.Join(dir, "prometheus.yml"),
		client:     &http.Client{Timeout: 30 * time.Second},
		log:        &syncBuffer{},
	}
	if err := os.WriteFile(p.configPath, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	cmd := exec.Command(bin,
		"--config.file="+p.configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr,
		"--log.level=info",
	)
	cmd.Dir = dir
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	setDeathSignal(cmd)
	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// The parent-death signal (Linux) fires when the thread that
		// started the child exits, not the process; holding this goroutine
		// on its thread until the child is gone keeps it from firing early.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	if err := p.waitReady(exited); err != nil {
		stop()
		if strings.Contains(p.log.String(), "address already in use") {
			return nil, fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, fmt.Errorf("%v\nconfig:\n%s\nprometheus output:\n%s", err, cfg, p.log.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.log.String())
		}
	})
	return p, nil
}

// configYAML writes the scrape and rule configuration. JSON is valid YAML,
// so every user-supplied string is quoted by encoding/json.
func configYAML(targets map[string]string, rules []string) (string, error) {
	jobs := make([]string, 0, len(targets))
	for job := range targets {
		jobs = append(jobs, job)
	}
	sort.Strings(jobs)
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	b.WriteString("rule_files:")
	if len(rules) == 0 {
		b.WriteString(" []\n")
	} else {
		b.WriteString("\n")
		for _, r := range rules {
			fmt.Fprintf(&b, "  - %s\n", q(r))
		}
	}
	b.WriteString("scrape_configs:")
	if len(jobs) == 0 {
		b.WriteString(" []\n")
	}
	b.WriteString("\n")
	for _, job := range jobs {
		target := targets[job]
		scheme, path := "http", "/metrics"
		if strings.Contains(target, "://") {
			u, err := url.Parse(target)
			if err != nil || u.Host == "" {
				return "", fmt.Errorf("target %q of job %s: want host:port or a URL", target, job)
			}
			scheme, target = u.Scheme, u.Host
			if u.Path != "" {
				path = u.Path
			}
		}
		if _, _, err := net.SplitHostPort(target); err != nil {
			return "", fmt.Errorf("target %q of job %s: want host:port: %v", target, job, err)
		}
		fmt.Fprintf(&b, "  - job_name: %s\n    scheme: %s\n    metrics_path: %s\n    static_configs:\n      - targets: [%s]\n",
			q(job), q(scheme), q(path), q(target))
	}
	return b.String(), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (p *Prometheus) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.ok(p.URL() + "/-/ready") {
			return nil
		}
		select {
		case <-exited:
			return errors.New("prometheus exited during start")
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus not ready after %s", startTimeout)
		}
	}
}

func (p *Prometheus) ok(u string) bool {
	resp, err := p.client.Get(u)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// URL is the server's base URL, e.g. http://127.0.0.1:40123.
func (p *Prometheus) URL() string { return "http://" + p.addr }

// Addr is the server's host:port.
func (p *Prometheus) Addr() string { return p.addr }

// ConfigFile is the path of the generated configuration.
func (p *Prometheus) ConfigFile() string { return p.configPath }

// Output returns what Prometheus has logged so far.
func (p *Prometheus) Output() string { return p.log.String() }

// APIError is an error answer of the HTTP API, e.g. ErrorType "bad_data"
// for a PromQL parse error.
type APIError struct {
	Path      string
	Status    int
	ErrorType string
	Message   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("prometheus %s: HTTP %d %s: %s", e.Path, e.Status, e.ErrorType, e.Message)
}

// IsBadData reports whether err is the API's bad_data error (an invalid
// query), which asking again will not fix.
func IsBadData(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.ErrorType == "bad_data"
}

type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// call does a GET (form == nil) or a form POST and decodes data into out.
func (p *Prometheus) call(ctx context.Context, path string, form url.Values, out any) ([]string, error) {
	var req *http.Request
	var err error
	if form == nil {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+path, nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.URL()+path, strings.NewReader(form.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: read: %w", path, err)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("prometheus %s: HTTP %d, undecodable body %q: %w", path, resp.StatusCode, truncate(body, 300), err)
	}
	if env.Status != "success" {
		return env.Warnings, &APIError{Path: path, Status: resp.StatusCode, ErrorType: env.ErrorType, Message: env.Error}
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return env.Warnings, fmt.Errorf("prometheus %s: decode data: %w", path, err)
		}
	}
	return env.Warnings, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Result is the answer to an instant query.
type Result struct {
	// ResultType is "vector", "matrix", "scalar" or "string".
	ResultType string
	// Series holds the vector's samples or the matrix's series.
	Series []Series
	// Scalar holds a scalar's or string's value.
	Scalar *Sample
	// Warnings are the API's warnings, if any.
	Warnings []string
}

// Series is one labelled series of a vector (Value) or a matrix (Values).
type Series struct {
	Labels map[string]string
	Value  Sample
	Values []Sample
}

// Sample is one value at one time. Value is NaN for "NaN" (e.g. a
// histogram_quantile over no observations); Raw is the API's text.
type Sample struct {
	Time  time.Time
	Value float64
	Raw   string
}

// Len is the number of series (vector, matrix), or 1 for a scalar or string.
func (r Result) Len() int {
	if r.Scalar != nil {
		return 1
	}
	return len(r.Series)
}

// String renders the result compactly for test messages.
func (r Result) String() string {
	var b strings.Builder
	b.WriteString(r.ResultType)
	if r.Scalar != nil {
		fmt.Fprintf(&b, " %s", r.Scalar.Raw)
		return b.String()
	}
	fmt.Fprintf(&b, " (%d series)", len(r.Series))
	for i, s := range r.Series {
		if i == 5 {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " %s=%s", labelString(s.Labels), s.Value.Raw)
	}
	return b.String()
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.Quote(l[k]))
	}
	name := l["__name__"]
	return name + "{" + strings.Join(parts, ",") + "}"
}

// UnmarshalJSON decodes the API's [unix_seconds, "value"] pair.
func (s *Sample) UnmarshalJSON(b []byte) error {
	var pair [2]json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	var ts float64
	if err := json.Unmarshal(pair[0], &ts); err != nil {
		return fmt.Errorf("sample time: %w", err)
	}
	if err := json.Unmarshal(pair[1], &s.Raw); err != nil {
		return fmt.Errorf("sample value: %w", err)
	}
	sec := int64(ts)
	s.Time = time.Unix(sec, int64((ts-float64(sec))*1e9))
	v, err := strconv.ParseFloat(s.Raw, 64)
	if err != nil {
		// A "string" result is not a number; keep Raw.
		v = 0
	}
	s.Value = v
	return nil
}

type rawResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type rawSeries struct {
	Metric map[string]string `json:"metric"`
	Value  *Sample           `json:"value"`
	Values []Sample          `json:"values"`
}

// Query runs an instant query at the current time via /api/v1/query.
func (p *Prometheus) Query(ctx context.Context, promql string) (Result, error) {
	var raw rawResult
	warnings, err := p.call(ctx, "/api/v1/query", url.Values{"query": {promql}}, &raw)
	if err != nil {
		return Result{Warnings: warnings}, fmt.Errorf("query %q: %w", promql, err)
	}
	res := Result{ResultType: raw.ResultType, Warnings: warnings}
	switch raw.ResultType {
	case "vector", "matrix":
		var ss []rawSeries
		if err := json.Unmarshal(raw.Result, &ss); err != nil {
			return res, fmt.Errorf("query %q: decode %s: %w", promql, raw.ResultType, err)
		}
		for _, s := range ss {
			out := Series{Labels: s.Metric, Values: s.Values}
			if s.Value != nil {
				out.Value = *s.Value
			}
			res.Series = append(res.Series, out)
		}
	case "scalar", "string":
		var s Sample
		if err := json.Unmarshal(raw.Result, &s); err != nil {
			return res, fmt.Errorf("query %q: decode %s: %w", promql, raw.ResultType, err)
		}
		res.Scalar = &s
	default:
		return res, fmt.Errorf("query %q: unknown result type %q", promql, raw.ResultType)
	}
	return res, nil
}

// WaitForSeries runs the query every 100 ms until it returns at least one
// series and returns that result. It gives up when ctx ends, returning the
// last error or a "no series" error, and at once on an invalid query.
func (p *Prometheus) WaitForSeries(ctx context.Context, promql string) (Result, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		res, err := p.Query(ctx, promql)
		if err == nil && res.Len() > 0 {
			return res, nil
		}
		if IsBadData(err) {
			return res, err
		}
		select {
		case <-ctx.Done():
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				return res, fmt.Errorf("no series before %w; last error: %w", context.Cause(ctx), err)
			}
			return res, fmt.Errorf("query %q returned no series (last answer: %s) before %w", promql, res, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// Rule is one recording or alerting rule as /api/v1/rules reports it.
type Rule struct {
	// Group and File are the rule group's name and file.
	Group string
	File  string
	// Name is the alert name or the recorded series name.
	Name string `json:"name"`
	// Query is the rule's expression as Prometheus formats it.
	Query string `json:"query"`
	// Type is "alerting" or "recording".
	Type string `json:"type"`
	// Health is "unknown" before the first evaluation, then "ok" or "err".
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	// State is an alert's "inactive", "pending" or "firing".
	State          string            `json:"state"`
	Duration       float64           `json:"duration"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations"`
	Alerts         []Alert           `json:"alerts"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
	EvaluationTime float64           `json:"evaluationTime"`
}

// Alert is one active (pending or firing) instance of an alerting rule.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

// Rules returns every loaded rule, in file and group order.
func (p *Prometheus) Rules(ctx context.Context) ([]Rule, error) {
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	if _, err := p.call(ctx, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			r.Group, r.File = g.Name, g.File
			out = append(out, r)
		}
	}
	return out, nil
}

// Target is one scrape target as /api/v1/targets reports it.
type Target struct {
	Labels     map[string]string `json:"labels"`
	ScrapePool string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	// Health is "unknown" before the first scrape, then "up" or "down".
	Health     string    `json:"health"`
	LastError  string    `json:"lastError"`
	LastScrape time.Time `json:"lastScrape"`
}

// Targets returns the active scrape targets.
func (p *Prometheus) Targets(ctx context.Context) ([]Target, error) {
	var data struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if _, err := p.call(ctx, "/api/v1/targets?state=active", nil, &data); err != nil {
		return nil, err
	}
	return data.ActiveTargets, nil
}

// syncBuffer collects the child's output; os/exec writes it from its own
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
