package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/tracing"
)

// observability is one process's telemetry: configuration, providers, the
// tracer, the metrics with their /metrics handler, and the logger.
type observability struct {
	cfg     *config.Config
	prov    *telemetry.Providers
	prom    *metrics.Prometheus
	metrics *metrics.Metrics
	tracer  *tracing.Tracer
	logger  *slog.Logger
	// extra are the providers of other services in this process (workerTracer).
	extra []*telemetry.Providers
}

// logLevelFlag binds --log-level; empty means the configured level.
func logLevelFlag(cmd *cobra.Command, def string) *string {
	var v string
	cmd.Flags().StringVar(&v, "log-level", def, "trace, debug, info, warn or error (default: telemetry.logs.level, TASKER_LOG_LEVEL)")
	return &v
}

// setupObservability loads the configuration and builds the telemetry of a
// process named service ("tasker-orchestration", "tasker-worker").
func setupObservability(ctx context.Context, service, logLevel string) (*observability, error) {
	return setupObservabilityTo(ctx, service, logLevel, "", os.Stderr)
}

// setupObservabilityTo is setupObservability with logs written to logOut and
// env as the environment when TASKER_ENV is unset (empty: config.DefaultEnv).
func setupObservabilityTo(ctx context.Context, service, logLevel, env string, logOut io.Writer) (*observability, error) {
	if os.Getenv("TASKER_ENV") != "" {
		env = ""
	}
	cfg, _, err := config.Load(config.LoadOptions{Env: env})
	if err != nil {
		return nil, usageError("configuration: %v", err)
	}
	if logLevel != "" {
		if cfg.Telemetry.Logs.Level, err = checkLogLevel(logLevel); err != nil {
			return nil, err
		}
	}
	boot := telemetry.NewLogger(cfg.Telemetry.Logs, logOut, nil)
	prom, err := metrics.NewPrometheus()
	if err != nil {
		return nil, err
	}
	prov, err := telemetry.New(ctx, cfg.Telemetry, service, telemetry.WithLogger(boot), telemetry.WithMetricReader(prom.Reader))
	if err != nil {
		return nil, err
	}
	m, err := metrics.New(prov.MeterProvider, metrics.WithCorrelationIDLabel(cfg.Telemetry.Metrics.CorrelationIDLabel),
		metrics.WithPrometheus(prom))
	if err != nil {
		_ = prov.Shutdown(context.Background())
		return nil, err
	}
	logger := telemetry.NewLogger(cfg.Telemetry.Logs, logOut, prov)
	return &observability{
		cfg: cfg, prov: prov, prom: prom, metrics: m,
		// At trace level (TASKER_LOG_LEVEL=trace or TASKER_LOG_LEVEL_SQL=trace)
		// every SQL function call logs its entry and exit.
		tracer: tracing.New(prov.TracerProvider, prov.Propagator).WithCallLog(logger),
		logger: logger,
	}, nil
}

// extraRoutes are the routes every process serves next to its API (or alone).
func (o *observability) extraRoutes() map[string]http.Handler {
	return map[string]http.Handler{"GET /metrics": o.prom.Handler()}
}

// wrapHTTP gives every request a server span (extracting incoming trace
// context) named by its route, not its path, so IDs stay out of span names.
func (o *observability) wrapHTTP(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "tasker-api",
		otelhttp.WithTracerProvider(o.prov.TracerProvider),
		otelhttp.WithPropagators(o.prov.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + routeOf(r.URL.Path) }),
		otelhttp.WithFilter(func(r *http.Request) bool {
			return r.URL.Path != "/metrics" && !strings.HasPrefix(r.URL.Path, "/health")
		}),
	)
}

// routeOf maps a request path to its route template.
func routeOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) >= 3 && parts[0] == "v1" && parts[1] == "tasks" {
		parts[2] = "{uuid}"
	}
	return "/" + strings.Join(parts, "/")
}

// workerTracer returns the tracer of a worker running in this process under
// its own service name, "tasker-worker", as it would in its own process
// (tasker dev). Its providers are flushed by shutdown with the others.
func (o *observability) workerTracer(ctx context.Context) (*tracing.Tracer, error) {
	p, err := telemetry.New(ctx, o.cfg.Telemetry, "tasker-worker", telemetry.WithLogger(o.logger))
	if err != nil {
		return nil, err
	}
	o.extra = append(o.extra, p)
	return tracing.New(p.TracerProvider, p.Propagator).WithCallLog(o.logger), nil
}

// shutdown flushes telemetry within telemetry.otlp.shutdown_timeout_seconds
// (Providers.Shutdown enforces it; the context is only a backstop). Every
// provider of the process flushes at once, so stopping waits for one
// timeout at most, however many there are.
func (o *observability) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(o.cfg.Telemetry.OTLP.ShutdownTimeout)+time.Second)
	defer cancel()
	all := append([]*telemetry.Providers{o.prov}, o.extra...)
	errs := make([]error, len(all)+1)
	errs[0] = o.metrics.Close()
	var wg sync.WaitGroup
	for i, p := range all {
		wg.Go(func() { errs[i+1] = p.Shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
