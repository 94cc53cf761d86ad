package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutlog"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/log"
	lognoop "go.opentelemetry.io/otel/log/noop"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/taskerhq/tasker/internal/config"
)

// ScopeName is the instrumentation scope of Tasker's own telemetry (the log
// bridge uses it; tracers and meters should too).
const ScopeName = "github.com/taskerhq/tasker"

// queueFactor sizes the span and log queues relative to one export batch:
// enough to ride out one slow export without dropping, small enough that a
// dead backend costs bounded memory.
const queueFactor = 4

// Providers holds the OpenTelemetry providers of one process. Pass them to
// instrumentation explicitly; New never installs them as globals.
type Providers struct {
	// TracerProvider is a no-op when telemetry is disabled.
	TracerProvider trace.TracerProvider
	// MeterProvider is a no-op when telemetry or metrics are disabled.
	MeterProvider metric.MeterProvider
	// LoggerProvider is a no-op when telemetry is disabled. NewLogger
	// bridges slog records into it.
	LoggerProvider log.LoggerProvider
	// Propagator is W3C tracecontext + baggage, even when disabled, so a
	// process that does not export still passes its callers' trace context
	// on to the processes that do.
	Propagator propagation.TextMapPropagator

	enabled         bool
	timeout         time.Duration
	shutdownTimeout time.Duration
	tp              *sdktrace.TracerProvider
	mp              *sdkmetric.MeterProvider
	lp              *sdklog.LoggerProvider
	// transport carries the http/protobuf exports; closed at shutdown.
	transport *http.Transport

	spans, logs *pipe
	metrics     *pipe
	// abandon cancels every export in flight and makes later ones fail at
	// once, so processors drain instantly when Shutdown runs out of time.
	abandonCtx context.Context
	abandon    context.CancelFunc

	shutdownOnce sync.Once
	shutdownErr  error
}

// Option adjusts New.
type Option func(*options)

type options struct {
	logger       *slog.Logger
	summaryEvery time.Duration
	readers      []sdkmetric.Reader
	console      io.Writer
}

// WithConsoleWriter sets where the console exporters write (default
// os.Stdout, as the OpenTelemetry specification says).
func WithConsoleWriter(w io.Writer) Option {
	return func(o *options) {
		if w != nil {
			o.console = w
		}
	}
}

// WithMetricReader adds a pull reader (the Prometheus exporter behind
// /metrics). Its MeterProvider exists even when telemetry export is
// disabled: /metrics never depends on a collector.
func WithMetricReader(r sdkmetric.Reader) Option {
	return func(o *options) { o.readers = append(o.readers, r) }
}

// WithLogger sets where export failures are reported (default slog.Default).
// Build it with NewLogger(cfg.Logs, os.Stderr, nil) before New, since the
// final logger needs the providers.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// withSummaryEvery lets tests see the periodic summary without waiting a
// minute.
func withSummaryEvery(d time.Duration) Option {
	return func(o *options) { o.summaryEvery = d }
}

// New builds the providers for cfg. serviceName, when non-empty, replaces
// cfg.ServiceName (e.g. "tasker-orchestration", "tasker-worker") unless the
// operator set OTEL_SERVICE_NAME. New never contacts the endpoint: an
// unreachable collector shows up later as dropped telemetry, not as an error
// here.
//
// Each signal has its own exporter (cfg.Traces.Exporter, cfg.Metrics.Exporter,
// cfg.Logs.Exporter: otlp, console or none) and, for OTLP, its own endpoint
// and protocol (cfg.OTLP.Target). A signal exported nowhere gets a no-op
// provider (metrics keep the pull readers, so /metrics still works).
func New(ctx context.Context, cfg config.Telemetry, serviceName string, opts ...Option) (*Providers, error) {
	o := options{logger: slog.Default(), summaryEvery: time.Minute, console: os.Stdout}
	for _, opt := range opts {
		opt(&o)
	}
	p := &Providers{
		TracerProvider: tracenoop.NewTracerProvider(),
		MeterProvider:  metricnoop.NewMeterProvider(),
		LoggerProvider: lognoop.NewLoggerProvider(),
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		spans:          &pipe{},
		logs:           &pipe{},
		metrics:        &pipe{},
	}
	name := cfg.ServiceNameFor(serviceName)
	tracesTo, metricsTo, logsTo := cfg.Traces.Exporter, cfg.Metrics.Exporter, cfg.Logs.Exporter
	if !cfg.Metrics.Enabled {
		metricsTo = config.ExporterNone
	}
	if !cfg.Enabled || (tracesTo == config.ExporterNone && metricsTo == config.ExporterNone && logsTo == config.ExporterNone) {
		if len(o.readers) > 0 {
			res, err := newResource(ctx, name, cfg.ServiceVersion, cfg.ResourceAttributes)
			if err != nil {
				return nil, err
			}
			p.mp = newMeterProvider(res, o.readers)
			p.MeterProvider = p.mp
		}
		return p, nil
	}

	// cfg is usually validated by config.Load, but New may also be handed a
	// hand-built one (tests, embedding programs).
	if cfg.OTLP.Timeout <= 0 {
		return nil, fmt.Errorf("telemetry: otlp timeout %s must be positive", time.Duration(cfg.OTLP.Timeout))
	}
	if cfg.OTLP.BatchSizeLimit < 1 {
		return nil, fmt.Errorf("telemetry: otlp batch size %d must be at least 1", cfg.OTLP.BatchSizeLimit)
	}
	sampler, err := newSampler(cfg.Sampling)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, name, cfg.ServiceVersion, cfg.ResourceAttributes)
	if err != nil {
		return nil, err
	}

	p.enabled = true
	p.timeout = time.Duration(cfg.OTLP.Timeout)
	p.shutdownTimeout = time.Duration(cfg.OTLP.ShutdownTimeout)
	if p.shutdownTimeout <= 0 {
		p.shutdownTimeout = p.timeout
	}
	p.abandonCtx, p.abandon = context.WithCancel(context.Background())
	batch := cfg.OTLP.BatchSizeLimit
	queue := queueFactor * batch
	p.spans.capacity = int64(queue)
	p.logs.capacity = int64(queue)
	rep := newReporter(o.logger, cfg.OTLP.Endpoint, o.summaryEvery)
	p.transport = http.DefaultTransport.(*http.Transport).Clone()
	build := func(signal string) (exporterSet, error) {
		t := cfg.OTLP.Target(signal)
		target, err := parseEndpoint(t.Endpoint)
		if err != nil {
			return exporterSet{}, err
		}
		st := &signalState{name: signal, endpoint: t.Endpoint}
		return exporterSet{
			protocol: t.Protocol, endpoint: t.Endpoint, exact: t.Exact, target: target, timeout: p.timeout, state: st,
			client: &http.Client{Transport: &statusWatch{next: p.transport, state: st}, Timeout: p.timeout},
		}, nil
	}

	if tracesTo != config.ExporterNone {
		var spanExp sdktrace.SpanExporter
		st := &signalState{name: "traces"}
		if tracesTo == config.ExporterConsole {
			spanExp, err = stdouttrace.New(stdouttrace.WithWriter(o.console))
		} else {
			var ex exporterSet
			if ex, err = build("traces"); err == nil {
				st = ex.state
				spanExp, err = ex.spans(ctx)
			}
		}
		if err != nil {
			return nil, p.abort(err)
		}
		p.spans.state = st
		bsp := sdktrace.NewBatchSpanProcessor(
			&spanExporter{next: spanExp, pipe: p.spans, rep: rep, abandon: p.abandonCtx},
			sdktrace.WithMaxQueueSize(queue),
			sdktrace.WithMaxExportBatchSize(batch),
			sdktrace.WithExportTimeout(p.timeout),
		)
		p.tp = sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sampler),
			sdktrace.WithRawSpanLimits(SpanLimits(cfg.Spans)),
			sdktrace.WithSpanProcessor(&boundedSpanProcessor{SpanProcessor: bsp, pipe: p.spans}),
		)
		p.TracerProvider = p.tp
	}

	if logsTo != config.ExporterNone {
		var logExp sdklog.Exporter
		st := &signalState{name: "logs"}
		if logsTo == config.ExporterConsole {
			logExp, err = stdoutlog.New(stdoutlog.WithWriter(o.console))
		} else {
			var ex exporterSet
			if ex, err = build("logs"); err == nil {
				st = ex.state
				logExp, err = ex.logs(ctx)
			}
		}
		if err != nil {
			return nil, p.abort(err)
		}
		p.logs.state = st
		blp := sdklog.NewBatchProcessor(
			&logExporter{next: logExp, pipe: p.logs, rep: rep, abandon: p.abandonCtx},
			sdklog.WithMaxQueueSize(queue),
			sdklog.WithExportMaxBatchSize(batch),
			sdklog.WithExportTimeout(p.timeout),
		)
		p.lp = sdklog.NewLoggerProvider(
			sdklog.WithResource(res),
			sdklog.WithProcessor(&boundedLogProcessor{Processor: blp, pipe: p.logs}),
		)
		p.LoggerProvider = p.lp
	}

	readers := o.readers
	if metricsTo != config.ExporterNone {
		var metricExp sdkmetric.Exporter
		st := &signalState{name: "metrics"}
		if metricsTo == config.ExporterConsole {
			metricExp, err = stdoutmetric.New(stdoutmetric.WithWriter(o.console))
		} else {
			var ex exporterSet
			if ex, err = build("metrics"); err == nil {
				st = ex.state
				metricExp, err = ex.metrics(ctx)
			}
		}
		if err != nil {
			return nil, p.abort(err)
		}
		p.metrics.state = st
		reader := sdkmetric.NewPeriodicReader(
			&metricExporter{Exporter: metricExp, pipe: p.metrics, rep: rep, abandon: p.abandonCtx},
			sdkmetric.WithInterval(time.Duration(cfg.Metrics.ExportInterval)),
			sdkmetric.WithTimeout(p.timeout),
		)
		readers = append([]sdkmetric.Reader{reader}, readers...)
	}
	if len(readers) > 0 {
		p.mp = newMeterProvider(res, readers)
		p.MeterProvider = p.mp
	}
	return p, nil
}

// SpanLimits turns the configured per-span caps into the SDK's limits; the
// attribute value length stays unlimited, as the SDK's default.
func SpanLimits(s config.Spans) sdktrace.SpanLimits {
	limits := sdktrace.NewSpanLimits()
	limits.AttributeCountLimit = s.MaxAttributes
	limits.EventCountLimit = s.MaxEvents
	limits.LinkCountLimit = s.MaxLinks
	return limits
}

func newMeterProvider(res *resource.Resource, readers []sdkmetric.Reader) *sdkmetric.MeterProvider {
	opts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	for _, r := range readers {
		opts = append(opts, sdkmetric.WithReader(r))
	}
	return sdkmetric.NewMeterProvider(opts...)
}

// abort releases what New built before failing; nothing was exported yet,
// so there is nothing to wait for.
func (p *Providers) abort(err error) error {
	if p.abandon != nil {
		p.abandon()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if p.tp != nil {
		_ = p.tp.Shutdown(ctx)
	}
	if p.lp != nil {
		_ = p.lp.Shutdown(ctx)
	}
	p.transport.CloseIdleConnections()
	return err
}

// Enabled reports whether the providers export any signal.
func (p *Providers) Enabled() bool { return p.enabled }

// ForceFlush exports what is buffered now, bounded by ctx and the configured
// timeout. Short-lived commands and tests call it; servers rely on Shutdown.
// Export failures are counted in Dropped, not returned.
func (p *Providers) ForceFlush(ctx context.Context) error {
	if !p.enabled {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return p.each(ctx, "flush", func(ctx context.Context, s flusher) error { return s.ForceFlush(ctx) })
}

// Shutdown flushes and stops all three providers in parallel. It returns
// within the earlier of ctx's deadline and the configured shutdown timeout
// (telemetry.otlp.shutdown_timeout_seconds) even
// when the endpoint never answers: shortly before that point, exports still
// in flight are abandoned and what they carried is counted as dropped, so the
// SDK's goroutines finish before Shutdown returns. Calling it again returns
// the first call's result.
func (p *Providers) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() { p.shutdownErr = p.shutdown(ctx) })
	return p.shutdownErr
}

func (p *Providers) shutdown(ctx context.Context) error {
	if !p.enabled {
		if p.mp != nil {
			return p.mp.Shutdown(ctx)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.shutdownTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	// Abandoning exports a little before the deadline leaves the processors
	// time to drain (each export then fails at once) and to close their
	// connections, so no SDK goroutine outlives Shutdown.
	margin := min(250*time.Millisecond, time.Until(deadline)/5)
	abandonTimer := time.AfterFunc(time.Until(deadline)-margin, p.abandon)
	defer abandonTimer.Stop()
	stopAbandon := context.AfterFunc(ctx, p.abandon)
	defer stopAbandon()

	err := p.each(ctx, "shutdown", func(ctx context.Context, s flusher) error { return s.Shutdown(ctx) })
	p.abandon()
	p.transport.CloseIdleConnections()
	p.spans.finish()
	p.logs.finish()
	return err
}

type flusher interface {
	ForceFlush(context.Context) error
	Shutdown(context.Context) error
}

// each runs fn on every live SDK provider concurrently, so three signals
// stuck on one dead endpoint cost one timeout, not three.
func (p *Providers) each(ctx context.Context, what string, fn func(context.Context, flusher) error) error {
	type named struct {
		name string
		f    flusher
	}
	var all []named
	if p.tp != nil {
		all = append(all, named{"traces", p.tp})
	}
	if p.mp != nil {
		all = append(all, named{"metrics", p.mp})
	}
	if p.lp != nil {
		all = append(all, named{"logs", p.lp})
	}
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, n := range all {
		wg.Go(func() {
			if err := fn(ctx, n.f); err != nil {
				errs[i] = fmt.Errorf("telemetry: %s %s: %w", what, n.name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Drops counts what never reached the backend.
type Drops struct {
	// Spans dropped because the queue was full, their export failed, or
	// Shutdown abandoned them.
	Spans int64
	// LogRecords, likewise.
	LogRecords int64
	// MetricExports counts failed metric exports (each carries every
	// instrument's current state, so the next success catches up on
	// cumulative values).
	MetricExports int64
}

// Drops returns the drop counts so far; after Shutdown they are final.
func (p *Providers) Drops() Drops {
	return Drops{Spans: p.spans.dropped.Load(), LogRecords: p.logs.dropped.Load(), MetricExports: p.metrics.dropped.Load()}
}

// Dropped counts spans, log records and metric exports dropped because the
// exporter could not keep up or failed.
func (p *Providers) Dropped() int64 {
	d := p.Drops()
	return d.Spans + d.LogRecords + d.MetricExports
}

// newSampler maps a strategy onto the SDK's samplers.
func newSampler(s config.Sampling) (sdktrace.Sampler, error) {
	switch s.Strategy {
	case config.StrategyParentBasedAlwaysOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case config.StrategyTraceIDRatio:
		return sdktrace.TraceIDRatioBased(s.Ratio), nil
	case config.StrategyParentBasedTraceIDRatio:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(s.Ratio)), nil
	case config.StrategyAlwaysOff:
		return sdktrace.NeverSample(), nil
	}
	return nil, fmt.Errorf("telemetry: unknown sampling strategy %q", s.Strategy)
}

func newResource(ctx context.Context, name, version string, extra map[string]string) (*resource.Resource, error) {
	// extra holds the configured attributes and OTEL_RESOURCE_ATTRIBUTES
	// (deployment.environment.name, k8s.*, …), already parsed and validated
	// by config.Load; it is read there rather than by resource.WithFromEnv
	// so `tasker config show` lists it. A service.instance.id there (a pod
	// name, say) replaces the random one.
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]attribute.KeyValue, 0, len(extra))
	for _, k := range keys {
		attrs = append(attrs, attribute.String(k, extra[k]))
	}
	instance := extra[string(semconv.ServiceInstanceIDKey)]
	if instance == "" {
		instance = uuid.NewString()
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithAttributes(attrs...),
		resource.WithAttributes(
			semconv.ServiceName(name),
			semconv.ServiceVersion(version),
			semconv.ServiceInstanceID(instance),
		),
	)
	// A detector that could not read something (say the host name) still
	// leaves a usable resource; telemetry without host.name beats none.
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// endpoint is a parsed OTLP endpoint.
type endpoint struct {
	hostPort string // host:port, the scheme's default port filled in
	insecure bool   // http:// — plaintext
	path     string // base path for http/protobuf, without trailing /
}

func parseEndpoint(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return endpoint{}, fmt.Errorf("telemetry: otlp endpoint %q is not an http:// or https:// URL with a host", raw)
	}
	hostPort := u.Host
	if u.Port() == "" {
		port := "443"
		if u.Scheme == "http" {
			port = "80"
		}
		hostPort = net.JoinHostPort(u.Hostname(), port)
	}
	return endpoint{hostPort: hostPort, insecure: u.Scheme == "http", path: strings.TrimSuffix(u.Path, "/")}, nil
}

// exporterSet builds one signal's OTLP exporter.
type exporterSet struct {
	protocol string
	endpoint string
	// exact: endpoint is a per-signal URL, used as given for http/protobuf.
	exact   bool
	target  endpoint
	timeout time.Duration
	state   *signalState
	// client serves the http/protobuf exporters. Their default shares one
	// package-level transport whose idle connections outlive Shutdown (and
	// so do their goroutines); with our own, Shutdown can close them.
	client *http.Client
}

// urlPath is the http/protobuf path of signal: the per-signal URL's own, or
// the base endpoint's with /v1/<signal> appended.
func (e exporterSet) urlPath(signal string) string {
	if e.exact {
		if e.target.path == "" {
			return "/"
		}
		return e.target.path
	}
	return e.target.path + "/v1/" + signal
}

// retry keeps retrying a transient failure within one export's timeout (the
// processors bound each export by it too), never longer.
func (e exporterSet) retry() (enabled bool, initial, maxInterval, maxElapsed time.Duration) {
	return true, min(500*time.Millisecond, e.timeout/4), min(5*time.Second, e.timeout), e.timeout
}

func (e exporterSet) spans(ctx context.Context) (sdktrace.SpanExporter, error) {
	on, initial, maxIv, maxEl := e.retry()
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch e.protocol {
	case config.ProtocolGRPC:
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpoint(e.target.hostPort),
			otlptracegrpc.WithTimeout(e.timeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: on, InitialInterval: initial, MaxInterval: maxIv, MaxElapsedTime: maxEl}),
		}
		if e.target.insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case config.ProtocolHTTPProtobuf:
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpoint(e.target.hostPort),
			otlptracehttp.WithURLPath(e.urlPath("traces")),
			otlptracehttp.WithTimeout(e.timeout),
			otlptracehttp.WithHTTPClient(e.client),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: on, InitialInterval: initial, MaxInterval: maxIv, MaxElapsedTime: maxEl}),
		}
		if e.target.insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("telemetry: unknown otlp protocol %q", e.protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: span exporter (%s %s): %w", e.protocol, e.endpoint, err)
	}
	return exp, nil
}

func (e exporterSet) metrics(ctx context.Context) (sdkmetric.Exporter, error) {
	on, initial, maxIv, maxEl := e.retry()
	var (
		exp sdkmetric.Exporter
		err error
	)
	switch e.protocol {
	case config.ProtocolGRPC:
		opts := []otlpmetricgrpc.Option{
			otlpmetricgrpc.WithEndpoint(e.target.hostPort),
			otlpmetricgrpc.WithTimeout(e.timeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: on, InitialInterval: initial, MaxInterval: maxIv, MaxElapsedTime: maxEl}),
		}
		if e.target.insecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
		exp, err = otlpmetricgrpc.New(ctx, opts...)
	case config.ProtocolHTTPProtobuf:
		opts := []otlpmetrichttp.Option{
			otlpmetrichttp.WithEndpoint(e.target.hostPort),
			otlpmetrichttp.WithURLPath(e.urlPath("metrics")),
			otlpmetrichttp.WithTimeout(e.timeout),
			otlpmetrichttp.WithHTTPClient(e.client),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: on, InitialInterval: initial, MaxInterval: maxIv, MaxElapsedTime: maxEl}),
		}
		if e.target.insecure {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		}
		exp, err = otlpmetrichttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("telemetry: unknown otlp protocol %q", e.protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: metric exporter (%s %s): %w", e.protocol, e.endpoint, err)
	}
	return exp, nil
}

func (e exporterSet) logs(ctx context.Context) (sdklog.Exporter, error) {
	on, initial, maxIv, maxEl := e.retry()
	var (
		exp sdklog.Exporter
		err error
	)
	switch e.protocol {
	case config.ProtocolGRPC:
		opts := []otlploggrpc.Option{
			otlploggrpc.WithEndpoint(e.target.hostPort),
			otlploggrpc.WithTimeout(e.timeout),
			otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: on, InitialInterval: initial, MaxInterval: maxIv, MaxElapsedTime: maxEl}),
		}
		if e.target.insecure {
			opts = append(opts, otlploggrpc.WithInsecure())
		}
		exp, err = otlploggrpc.New(ctx, opts...)
	case config.ProtocolHTTPProtobuf:
		opts := []otlploghttp.Option{
			otlploghttp.WithEndpoint(e.target.hostPort),
			otlploghttp.WithURLPath(e.urlPath("logs")),
			otlploghttp.WithTimeout(e.timeout),
			otlploghttp.WithHTTPClient(e.client),
			otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: on, InitialInterval: initial, MaxInterval: maxIv, MaxElapsedTime: maxEl}),
		}
		if e.target.insecure {
			opts = append(opts, otlploghttp.WithInsecure())
		}
		exp, err = otlploghttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("telemetry: unknown otlp protocol %q", e.protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: log exporter (%s %s): %w", e.protocol, e.endpoint, err)
	}
	return exp, nil
}
