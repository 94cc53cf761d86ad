// Package jaegertest runs a real Jaeger v2 for a test and reads back what was
// exported to it through Jaeger's query API, so tracing is tested end to end
// against a real OTLP receiver and trace store rather than a fake exporter.
//
// The binary is tools/bin/jaeger, built by scripts/build-jaeger.sh (run by
// scripts/test-setup.sh). A missing binary fails the test: a skipped trace
// test in CI would look like a passing one.
package jaegertest

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	modulePath = "github.com/taskerhq/tasker"
	binaryRel  = "tools/bin/jaeger"
	// startTimeout covers a cold start on a busy 2-core CI machine; Jaeger
	// is normally ready in well under a second.
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	// startAttempts covers the race between probing free ports and Jaeger
	// binding them, which parallel test packages can lose.
	startAttempts = 3
)

// ErrNotFound is returned by Trace when Jaeger has no such trace (yet).
var ErrNotFound = errors.New("jaegertest: trace not found")

// Jaeger is a running Jaeger v2 with in-memory storage, listening on
// 127.0.0.1 only.
type Jaeger struct {
	grpcPort, httpPort, queryPort, healthPort int
	// metricsPort serves, in Prometheus format, the OTLP metrics the
	// collector received: the way a test sees what a process pushed.
	metricsPort int
	client      *http.Client
	log         *syncBuffer
}

// Start runs Jaeger for the rest of the test and stops it in t.Cleanup. Only
// the OTLP receiver (gRPC and HTTP), the query API and the health check are
// enabled, each on a free port of 127.0.0.1, so parallel test packages never
// collide and nothing is reachable from outside.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("jaegertest: %v", err)
	}
	var lastErr error
	for range startAttempts {
		j, stop, err := launch(t.TempDir(), bin, "debug")
		if err == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("jaeger output:\n%s", j.log.String())
				}
			})
			return j
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("jaegertest: %v", lastErr)
	return nil
}

// Binary returns the path of tools/bin/jaeger in the tasker repository that
// contains the working directory, or an error saying how to build it.
func Binary() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return binaryIn(root)
}

func binaryIn(root string) (string, error) {
	bin := filepath.Join(root, filepath.FromSlash(binaryRel))
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s is missing: run scripts/build-jaeger.sh (builds Jaeger v2 from tools/go.mod; a few minutes) — %w", bin, err)
	}
	return bin, nil
}

// repoRoot walks up from the working directory (a test runs in its package's
// directory) to the go.mod of the tasker module; the tools module's go.mod on
// the way does not count.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for dir := wd; ; {
		if isTaskerModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above %s", modulePath, wd)
		}
		dir = parent
	}
}

func isTaskerModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == modulePath
		}
	}
	return false
}

var errPortTaken = errors.New("port taken")

// Launch runs Jaeger outside a test (benchmarks), with its files in dir;
// the caller calls stop. Log records sent to it are accepted and dropped
// (Output does not show them): printing each one, as tests need, made
// Jaeger's output a large share of a full-telemetry benchmark's CPU.
func Launch(dir string) (_ *Jaeger, stop func(), err error) {
	bin, err := Binary()
	if err != nil {
		return nil, nil, err
	}
	for range startAttempts {
		var j *Jaeger
		j, stop, err = launch(dir, bin, "nop")
		if err == nil {
			return j, stop, nil
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, nil, err
}

// launch starts Jaeger; logsExporter receives the OTLP log records: debug
// prints them (Output), nop drops them.
func launch(dir, bin, logsExporter string) (*Jaeger, func(), error) {
	ports, err := freePorts(6)
	if err != nil {
		return nil, nil, err
	}
	j := &Jaeger{
		grpcPort:  ports[0],
		httpPort:  ports[1],
		queryPort: ports[2],
		// ports[3] is the query gRPC API, unused here but moved off 16685.
		healthPort:  ports[4],
		metricsPort: ports[5],
		client:      &http.Client{Timeout: 10 * time.Second},
		log:         &syncBuffer{},
	}
	cfgPath := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(ports, logsExporter)), 0o600); err != nil {
		return nil, nil, fmt.Errorf("write config: %w", err)
	}

	cmd := exec.Command(bin, "--config="+cfgPath)
	cmd.Dir = dir
	cmd.Stdout = j.log
	cmd.Stderr = j.log
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
		return nil, nil, fmt.Errorf("start %s: %w", bin, err)
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

	if err := j.waitReady(exited); err != nil {
		stop()
		if strings.Contains(j.log.String(), "address already in use") {
			return nil, nil, fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, nil, fmt.Errorf("%v\njaeger output:\n%s", err, j.log.String())
	}
	return j, stop, nil
}

// configYAML is a minimal Jaeger v2 (OpenTelemetry Collector) configuration.
// The built-in all-in-one one also opens zipkin, jaeger, sampling, expvar,
// zpages and metrics listeners on fixed ports, which parallel test packages
// would fight over. Metrics and logs sent to the OTLP receiver are accepted
// and discarded, so a process exporting all three signals sees no errors.
func configYAML(ports []int, logsExporter string) string {
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
    metrics:
      receivers: [otlp]
      exporters: [prometheus]
    logs:
      receivers: [otlp]
      exporters: [%[7]s]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      # info, for the debug exporter's records (Output); Jaeger's own
      # start-up lines come with them.
      level: info
extensions:
  jaeger_query:
    # Jaeger would trace its own queries to localhost:4317 — someone else's
    # collector, or nobody, and then it waits 10 s at shutdown to flush.
    enable_tracing: false
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:%[3]d
    grpc:
      endpoint: 127.0.0.1:%[4]d
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:%[5]d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%[1]d
      http:
        endpoint: 127.0.0.1:%[2]d
processors:
  batch:
    # Tests wait for spans; the default 200 ms would only slow them down.
    timeout: 20ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
  nop:
  debug:
    verbosity: detailed
  prometheus:
    endpoint: 127.0.0.1:%[6]d
`, ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], logsExporter)
}

func freePorts(n int) ([]int, error) {
	// Hold every listener until all are chosen, so the n ports differ.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady polls the health check, which turns OK only after every
// component (receivers included) has started, then the query API.
func (j *Jaeger) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if j.ok("http://127.0.0.1:"+strconv.Itoa(j.healthPort)+"/status") && j.ok(j.QueryURL()+"/api/services") {
			return nil
		}
		select {
		case <-exited:
			return errors.New("jaeger exited during start")
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jaeger not ready after %s", startTimeout)
		}
	}
}

func (j *Jaeger) ok(u string) bool {
	resp, err := j.client.Get(u)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// OTLPGRPCEndpoint is the OTLP/gRPC receiver as host:port.
func (j *Jaeger) OTLPGRPCEndpoint() string { return "127.0.0.1:" + strconv.Itoa(j.grpcPort) }

// OTLPHTTPEndpoint is the OTLP/HTTP receiver's base URL (signal paths such as
// /v1/traces go after it).
func (j *Jaeger) OTLPHTTPEndpoint() string { return "http://127.0.0.1:" + strconv.Itoa(j.httpPort) }

// MetricsURL serves, in Prometheus text format, the metrics pushed to the
// OTLP receiver.
func (j *Jaeger) MetricsURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(j.metricsPort) + "/metrics"
}

// QueryURL is the base URL of Jaeger's HTTP query API (the UI itself is not
// in the Go module).
func (j *Jaeger) QueryURL() string { return "http://127.0.0.1:" + strconv.Itoa(j.queryPort) }

// Output returns what Jaeger has logged so far.
func (j *Jaeger) Output() string { return j.log.String() }

// Trace is one trace as Jaeger's query API returns it.
type Trace struct {
	TraceID string
	Spans   []Span
}

// Span is one span of a Trace.
type Span struct {
	TraceID       string
	SpanID        string
	OperationName string
	// References holds the parent (CHILD_OF) and, for OpenTelemetry span
	// links, FOLLOWS_FROM entries.
	References []Reference
	StartTime  time.Time
	Duration   time.Duration
	// Tags are the span's attributes (plus Jaeger's own, e.g. span.kind,
	// otel.status_code), typed: string, bool, int64 or float64.
	Tags map[string]any
	// Events are the span's events (Jaeger "logs").
	Events []Event
	// ServiceName is the service.name of the resource that sent the span.
	ServiceName string
	// ProcessTags are the other resource attributes.
	ProcessTags map[string]any
}

// Reference links a span to another span.
type Reference struct {
	RefType string // CHILD_OF or FOLLOWS_FROM
	TraceID string
	SpanID  string
}

// Event is a span event.
type Event struct {
	Time   time.Time
	Fields map[string]any // includes "event" = the event name
}

// ParentSpanID is the span's CHILD_OF parent, "" for a root span.
func (s Span) ParentSpanID() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Span returns the first span with the given operation name, or nil.
func (t *Trace) Span(operation string) *Span {
	for i := range t.Spans {
		if t.Spans[i].OperationName == operation {
			return &t.Spans[i]
		}
	}
	return nil
}

// Traces returns the service's traces (up to 1000, newest first).
func (j *Jaeger) Traces(ctx context.Context, service string) ([]Trace, error) {
	q := url.Values{"service": {service}, "limit": {"1000"}, "lookback": {"24h"}}
	var resp apiResponse
	if err := j.get(ctx, "/api/traces?"+q.Encode(), &resp); err != nil {
		return nil, err
	}
	return resp.traces()
}

// Trace returns one trace by its 32-hex-digit ID; ErrNotFound if Jaeger does
// not have it.
func (j *Jaeger) Trace(ctx context.Context, traceID string) (*Trace, error) {
	var resp apiResponse
	if err := j.get(ctx, "/api/traces/"+url.PathEscape(traceID), &resp); err != nil {
		return nil, err
	}
	traces, err := resp.traces()
	if err != nil {
		return nil, err
	}
	if len(traces) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, traceID)
	}
	return &traces[0], nil
}

// WaitForSpans polls until the trace has at least n spans and returns it.
// Export and storage are asynchronous, so a test that just flushed its
// exporter must wait for the spans to become queryable. Without a deadline
// on ctx it gives up after 30 s.
func (j *Jaeger) WaitForSpans(ctx context.Context, traceID string, n int) (*Trace, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		tr, err := j.Trace(ctx, traceID)
		if err == nil && len(tr.Spans) >= n {
			return tr, nil
		}
		if err == nil {
			err = fmt.Errorf("trace %s has %d of %d spans", traceID, len(tr.Spans), n)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("jaegertest: waiting for %d spans of trace %s: %w (last: %v)", n, traceID, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func (j *Jaeger) get(ctx context.Context, path string, into *apiResponse) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.QueryURL()+path, nil)
	if err != nil {
		return fmt.Errorf("jaegertest: %w", err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("jaegertest: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("jaegertest: GET %s: read body: %w", path, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: GET %s", ErrNotFound, path)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jaegertest: GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("jaegertest: GET %s: decode: %w", path, err)
	}
	return nil
}

// The JSON shapes of Jaeger's (v1-compatible) /api/traces.
type apiResponse struct {
	Data   []apiTrace `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

type apiTrace struct {
	TraceID   string                `json:"traceID"`
	Spans     []apiSpan             `json:"spans"`
	Processes map[string]apiProcess `json:"processes"`
}

type apiSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64    `json:"startTime"` // µs since the epoch
	Duration  int64    `json:"duration"`  // µs
	Tags      []apiTag `json:"tags"`
	Logs      []struct {
		Timestamp int64    `json:"timestamp"`
		Fields    []apiTag `json:"fields"`
	} `json:"logs"`
	ProcessID string `json:"processID"`
}

type apiProcess struct {
	ServiceName string   `json:"serviceName"`
	Tags        []apiTag `json:"tags"`
}

type apiTag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

func (r apiResponse) traces() ([]Trace, error) {
	if len(r.Errors) > 0 && len(r.Data) == 0 {
		msgs := make([]string, len(r.Errors))
		for i, e := range r.Errors {
			msgs[i] = fmt.Sprintf("%d %s", e.Code, e.Msg)
		}
		return nil, fmt.Errorf("jaegertest: query errors: %s", strings.Join(msgs, "; "))
	}
	out := make([]Trace, 0, len(r.Data))
	for _, at := range r.Data {
		tr := Trace{TraceID: at.TraceID}
		for _, as := range at.Spans {
			s := Span{
				TraceID:       as.TraceID,
				SpanID:        as.SpanID,
				OperationName: as.OperationName,
				StartTime:     time.UnixMicro(as.StartTime),
				Duration:      time.Duration(as.Duration) * time.Microsecond,
				Tags:          tagMap(as.Tags),
			}
			for _, r := range as.References {
				s.References = append(s.References, Reference(r))
			}
			for _, l := range as.Logs {
				s.Events = append(s.Events, Event{Time: time.UnixMicro(l.Timestamp), Fields: tagMap(l.Fields)})
			}
			if p, ok := at.Processes[as.ProcessID]; ok {
				s.ServiceName = p.ServiceName
				s.ProcessTags = tagMap(p.Tags)
			}
			tr.Spans = append(tr.Spans, s)
		}
		out = append(out, tr)
	}
	return out, nil
}

// tagMap converts Jaeger's typed tags into Go values of their declared type.
func tagMap(tags []apiTag) map[string]any {
	m := make(map[string]any, len(tags))
	for _, t := range tags {
		v := t.Value
		if n, ok := v.(json.Number); ok {
			switch t.Type {
			case "int64":
				if i, err := n.Int64(); err == nil {
					v = i
				}
			default:
				if f, err := n.Float64(); err == nil {
					v = f
				}
			}
		}
		m[t.Key] = v
	}
	return m
}

// syncBuffer collects the child's output; the child writes from os/exec's
// copying goroutines while tests read it.
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
