package metrics

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Prometheus is a pull exporter with its own registry (no global state) and
// the handler that serves it.
type Prometheus struct {
	Reader   sdkmetric.Reader
	registry *prometheus.Registry
	zeros    *zeroProducer
}

// NewPrometheus returns an exporter to add to a MeterProvider as a reader.
// Pass it to New with WithPrometheus so its histograms show from the start.
func NewPrometheus() (*Prometheus, error) {
	reg := prometheus.NewRegistry()
	// The Go runtime's and the process's own series (go_goroutines,
	// process_resident_memory_bytes, process_open_fds, …) sit next to
	// Tasker's: leaks show there first, and `tasker bench soak` reads them.
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	zeros := &zeroProducer{start: time.Now()}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithProducer(zeros))
	if err != nil {
		return nil, fmt.Errorf("creating prometheus exporter: %w", err)
	}
	return &Prometheus{Reader: exp, registry: reg, zeros: zeros}, nil
}

// Handler serves /metrics; OpenMetrics (with exemplars) when the scraper asks for it.
func (p *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// MeterProvider returns a provider reading into this exporter only (tests,
// and processes with OTLP export disabled).
func (p *Prometheus) MeterProvider() metric.MeterProvider {
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(p.Reader))
}
