package telemetry

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/taskerhq/tasker/internal/config"
)

// receiver is a real OTLP/gRPC server (the generated collector services),
// counting what arrives. delay makes it a slow backend: each export waits
// that long (or until the client gives up) before answering.
type receiver struct {
	addr  string
	delay time.Duration
	srv   *grpc.Server

	spans, logRecords, metricExports atomic.Int64

	mu        sync.Mutex
	logs      []*logspb.LogRecord
	spanList  []*tracepb.Span
	resources []*resourcepb.Resource
}

// receivedSpans returns every span received so far.
func (r *receiver) receivedSpans() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spanList...)
}

// resourceAttrs returns the attributes of the resource of the first span batch.
func (r *receiver) resourceAttrs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	if len(r.resources) > 0 {
		for _, kv := range r.resources[0].Attributes {
			out[kv.Key] = kv.Value.GetStringValue()
		}
	}
	return out
}

func startReceiver(t *testing.T, delay time.Duration) *receiver {
	t.Helper()
	return startReceiverFor(t, delay, true, true, true)
}

// startReceiverFor registers only the services asked for; a client of the
// others gets codes.Unimplemented, as from a traces-only collector (Jaeger).
func startReceiverFor(t *testing.T, delay time.Duration, traces, metrics, logs bool) *receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: lis.Addr().String(), delay: delay, srv: grpc.NewServer()}
	if traces {
		coltracepb.RegisterTraceServiceServer(r.srv, traceService{r: r})
	}
	if metrics {
		colmetricpb.RegisterMetricsServiceServer(r.srv, metricService{r: r})
	}
	if logs {
		collogspb.RegisterLogsServiceServer(r.srv, logService{r: r})
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = r.srv.Serve(lis)
	}()
	t.Cleanup(func() {
		r.stop()
		<-served
	})
	return r
}

// stop closes every connection and waits for the handlers, so a leak check
// after it sees only the client's goroutines.
func (r *receiver) stop() { r.srv.Stop() }

func (r *receiver) wait(ctx context.Context) error {
	if r.delay == 0 {
		return nil
	}
	select {
	case <-time.After(r.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *receiver) receivedLogs() []*logspb.LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*logspb.LogRecord(nil), r.logs...)
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *receiver
}

func (s traceService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if err := s.r.wait(ctx); err != nil {
		return nil, err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		s.r.resources = append(s.r.resources, rs.Resource)
		for _, ss := range rs.ScopeSpans {
			s.r.spans.Add(int64(len(ss.Spans)))
			s.r.spanList = append(s.r.spanList, ss.Spans...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type metricService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	r *receiver
}

func (s metricService) Export(ctx context.Context, _ *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	if err := s.r.wait(ctx); err != nil {
		return nil, err
	}
	s.r.metricExports.Add(1)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

type logService struct {
	collogspb.UnimplementedLogsServiceServer
	r *receiver
}

func (s logService) Export(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	if err := s.r.wait(ctx); err != nil {
		return nil, err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			s.r.logRecords.Add(int64(len(sl.LogRecords)))
			s.r.logs = append(s.r.logs, sl.LogRecords...)
		}
	}
	return &collogspb.ExportLogsServiceResponse{}, nil
}

// blackHole accepts TCP connections and never reads or answers: the worst
// backend, one that neither fails nor succeeds.
type blackHole struct {
	addr string
	lis  net.Listener
	mu   sync.Mutex
	cons []net.Conn
	done chan struct{}
}

func startBlackHole(t *testing.T) *blackHole {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{addr: lis.Addr().String(), lis: lis, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.cons = append(b.cons, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.stop)
	return b
}

func (b *blackHole) accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.cons)
}

func (b *blackHole) stop() {
	_ = b.lis.Close()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.cons {
		_ = c.Close()
	}
	b.cons = nil
}

// closedPort returns an address nothing listens on: connections are refused.
func closedPort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

// enabledConfig is a telemetry config exporting to addr over protocol.
func enabledConfig(addr, protocol string, timeout time.Duration, batch int) config.Telemetry {
	cfg := config.Default().Telemetry
	cfg.Enabled = true
	cfg.ServiceName = "telemetry-test"
	cfg.OTLP.Endpoint = "http://" + addr
	cfg.OTLP.Protocol = protocol
	cfg.OTLP.Timeout = config.Duration(timeout)
	cfg.OTLP.ShutdownTimeout = config.Duration(timeout)
	cfg.OTLP.BatchSizeLimit = batch
	cfg.Metrics.ExportInterval = config.Duration(time.Hour) // exported at flush/shutdown only
	return cfg
}

// httpReceiver is an OTLP/HTTP endpoint answering every export with an empty
// protobuf response (which is a valid one) after delay.
type httpReceiver struct {
	addr     string
	srv      *http.Server
	requests sync.Map // path → *atomic.Int64
	done     chan struct{}
}

func startHTTPReceiver(t *testing.T, delay time.Duration, notFound ...string) *httpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &httpReceiver{addr: lis.Addr().String(), done: make(chan struct{})}
	h.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
					return
				}
			}
			n, _ := h.requests.LoadOrStore(r.URL.Path, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			if slices.Contains(notFound, r.URL.Path) {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK)
		}),
	}
	go func() {
		defer close(h.done)
		_ = h.srv.Serve(lis)
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *httpReceiver) count(path string) int64 {
	if n, ok := h.requests.Load(path); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func (h *httpReceiver) stop() {
	_ = h.srv.Close()
	<-h.done
}
