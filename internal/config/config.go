package config

import (
	"fmt"
	"strconv"
	"time"
)

// Config is the whole of Tasker's configuration. Each TOML section is one
// field; sections are independent so they can be added without touching the
// others.
type Config struct {
	Telemetry Telemetry `toml:"telemetry"`
	API       API       `toml:"api"`
	// Orchestration is read by the processes that run an orchestrator.
	Orchestration Orchestration `toml:"orchestration"`

	// sources maps a dotted key to where its value came from ("default" when
	// absent), so Validate can name the file or variable behind a bad value.
	sources map[string]string
}

// Telemetry configures OpenTelemetry export and the process's own logs.
type Telemetry struct {
	// Enabled turns OTLP export of traces, metrics and logs on. Off, the
	// providers are no-ops but trace context still propagates.
	//
	// Precedence, highest first: OTEL_SDK_DISABLED=true; an explicit value
	// (a file or TASKER_TELEMETRY_ENABLED); an OTEL_EXPORTER_OTLP_*ENDPOINT
	// or OTEL_*_EXPORTER other than none, which turns export on as every
	// OpenTelemetry SDK does; the default, off.
	Enabled        bool   `toml:"enabled"`
	ServiceName    string `toml:"service_name"`
	ServiceVersion string `toml:"service_version"`
	// ResourceAttributes are added to the resource of every signal
	// (OTEL_RESOURCE_ATTRIBUTES); service.name, service.version and
	// service.instance.id are Tasker's own and cannot be overridden here.
	ResourceAttributes map[string]string `toml:"resource_attributes"`
	OTLP               OTLP              `toml:"otlp"`
	Sampling           Sampling          `toml:"sampling"`
	Spans              Spans             `toml:"spans"`
	Traces             Traces            `toml:"traces"`
	Metrics            Metrics           `toml:"metrics"`
	Logs               Logs              `toml:"logs"`
	UI                 UI                `toml:"ui"`

	// serviceNameFromEnv is set when OTEL_SERVICE_NAME supplied ServiceName:
	// that operator choice must beat the per-process default name a binary
	// passes in (see ServiceNameFor).
	serviceNameFromEnv bool
}

// Exporters a signal can use (OTEL_TRACES_EXPORTER and friends).
const (
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
	ExporterNone    = "none"
)

// OTLP protocols.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// OTLP says where and how telemetry is exported.
type OTLP struct {
	// Endpoint is a URL: http:// for plaintext, https:// for TLS. For
	// http/protobuf it is the base to which /v1/traces, /v1/metrics and
	// /v1/logs are appended; for gRPC only host and port are used. Without a
	// port, the scheme's default (80, 443) applies.
	Endpoint string `toml:"endpoint"`
	Protocol string `toml:"protocol"`
	// Timeout bounds each export.
	Timeout Duration `toml:"timeout_seconds"`
	// ShutdownTimeout bounds the final flush when the process stops: what is
	// not sent by then is dropped (and counted), so Ctrl-C never waits long
	// on a collector that has gone away.
	ShutdownTimeout Duration `toml:"shutdown_timeout_seconds"`
	// BatchSizeLimit is the most spans or log records sent in one export.
	BatchSizeLimit int `toml:"batch_size_limit"`

	// Per-signal endpoints and protocols; empty means Endpoint and Protocol.
	// A per-signal endpoint is used as given (for http/protobuf it is the
	// full URL, /v1/<signal> is not appended), as the OpenTelemetry
	// specification says for OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT.
	TracesEndpoint  string `toml:"traces_endpoint"`
	TracesProtocol  string `toml:"traces_protocol"`
	MetricsEndpoint string `toml:"metrics_endpoint"`
	MetricsProtocol string `toml:"metrics_protocol"`
	LogsEndpoint    string `toml:"logs_endpoint"`
	LogsProtocol    string `toml:"logs_protocol"`
}

// SignalTarget is where one signal is exported over OTLP.
type SignalTarget struct {
	// Endpoint is the URL to use.
	Endpoint string
	// Protocol is grpc or http/protobuf.
	Protocol string
	// Exact is true when Endpoint is a per-signal endpoint, used as given;
	// otherwise /v1/<signal> is appended for http/protobuf.
	Exact bool
}

// Target resolves the endpoint and protocol of signal ("traces", "metrics"
// or "logs") from its own keys, falling back to the shared ones.
func (o OTLP) Target(signal string) SignalTarget {
	var ep, proto string
	switch signal {
	case "traces":
		ep, proto = o.TracesEndpoint, o.TracesProtocol
	case "metrics":
		ep, proto = o.MetricsEndpoint, o.MetricsProtocol
	case "logs":
		ep, proto = o.LogsEndpoint, o.LogsProtocol
	}
	t := SignalTarget{Endpoint: o.Endpoint, Protocol: o.Protocol}
	if ep != "" {
		t.Endpoint, t.Exact = ep, true
	}
	if proto != "" {
		t.Protocol = proto
	}
	return t
}

// UI configures how the web console at /ui/ links tasks to their traces.
// Both are empty by default: the console then shows the trace ID as text.
type UI struct {
	// TraceURLTemplate is a tracing UI's page of one trace, with {trace_id}
	// where the task's trace ID goes, e.g.
	// "http://jaeger:16686/trace/{trace_id}" (TASKER_UI_TRACE_URL_TEMPLATE).
	TraceURLTemplate string `toml:"trace_url_template"`
	// JaegerQueryURL is the base URL of a Jaeger query service, e.g.
	// "http://localhost:16686" (TASKER_UI_JAEGER_QUERY_URL). When set, the
	// server proxies its /api/traces/{id} so the console draws a task's trace.
	JaegerQueryURL string `toml:"jaeger_query_url"`
}

// TraceIDPlaceholder is replaced by a trace ID in UI.TraceURLTemplate.
const TraceIDPlaceholder = "{trace_id}"

// Traces configures trace export.
type Traces struct {
	// Exporter is otlp, console (JSON lines on stdout) or none
	// (OTEL_TRACES_EXPORTER). With none, spans are not recorded, but trace
	// context still propagates.
	Exporter string `toml:"exporter"`
}

// Sampling strategies.
const (
	StrategyParentBasedAlwaysOn     = "parent_based_always_on"
	StrategyTraceIDRatio            = "trace_id_ratio"
	StrategyParentBasedTraceIDRatio = "parent_based_trace_id_ratio"
	StrategyAlwaysOff               = "always_off"
)

// Sampling chooses which traces are recorded and exported.
type Sampling struct {
	Strategy string `toml:"strategy"`
	// Ratio is the fraction of traces kept by the *_trace_id_ratio strategies.
	Ratio float64 `toml:"ratio"`
}

// Spans caps what one span may hold, so a runaway loop adding events cannot
// grow a span without bound.
type Spans struct {
	MaxAttributes int `toml:"max_attributes"`
	MaxEvents     int `toml:"max_events"`
	MaxLinks      int `toml:"max_links"`
}

// Metrics configures OTLP metric push.
type Metrics struct {
	// Enabled = false is the same as Exporter = "none".
	Enabled bool `toml:"enabled"`
	// Exporter is otlp, console or none (OTEL_METRICS_EXPORTER). /metrics
	// is served whatever it says.
	Exporter       string   `toml:"exporter"`
	ExportInterval Duration `toml:"export_interval_seconds"`
	// CorrelationIDLabel puts correlation_id on metric labels. Every task
	// then makes new time series, which metric backends cannot hold for
	// long; it exists for short debugging sessions only.
	CorrelationIDLabel bool `toml:"correlation_id_label"`
}

// Log formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Log levels, as written in configuration. Trace is below debug (slog level
// -8): entry and exit of hot-path calls, for following one request through
// the code; it costs nothing unless enabled.
const (
	LevelTrace = "trace"
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Logs configures the process's slog output (and, when telemetry is enabled,
// the same records exported as OTLP logs).
type Logs struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
	// Exporter is otlp, console or none (OTEL_LOGS_EXPORTER): where log
	// records go besides stderr when telemetry is enabled.
	Exporter string `toml:"exporter"`
	// Components maps a component name (a record's "component" attribute)
	// to its own level, so one subsystem can be debugged without drowning
	// in the others' debug output.
	Components map[string]string `toml:"components"`
}

// Duration is a time.Duration written in TOML as a number of seconds
// (fractions allowed), which is how the *_seconds keys read best; the OTEL_*
// variables that set the same values are in milliseconds.
type Duration time.Duration

// UnmarshalTOML reads a number of seconds.
func (d *Duration) UnmarshalTOML(v any) error {
	var secs float64
	switch n := v.(type) {
	case int64:
		secs = float64(n)
	case float64:
		secs = n
	case string:
		return fmt.Errorf("%q is not a number of seconds", n)
	default:
		return fmt.Errorf("%v is not a number of seconds", v)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// String formats d the way it is written in TOML: seconds.
func (d Duration) String() string {
	return strconv.FormatFloat(time.Duration(d).Seconds(), 'f', -1, 64)
}

// Default returns the compiled-in configuration. It equals
// config/tasker/base/*.toml, so a deployment without files behaves like one
// with only the base files.
func Default() *Config {
	return &Config{
		Telemetry: Telemetry{
			Enabled:            false,
			ServiceName:        "tasker",
			ServiceVersion:     "0.1.0",
			ResourceAttributes: map[string]string{},
			OTLP: OTLP{
				Endpoint:        "http://localhost:4317",
				Protocol:        ProtocolGRPC,
				Timeout:         Duration(10 * time.Second),
				ShutdownTimeout: Duration(2 * time.Second),
				BatchSizeLimit:  512,
			},
			Sampling: Sampling{Strategy: StrategyParentBasedAlwaysOn, Ratio: 1},
			Spans:    Spans{MaxAttributes: 128, MaxEvents: 128, MaxLinks: 128},
			Traces:   Traces{Exporter: ExporterOTLP},
			Metrics: Metrics{
				Enabled:        true,
				Exporter:       ExporterOTLP,
				ExportInterval: Duration(60 * time.Second),
			},
			Logs: Logs{Level: LevelInfo, Format: FormatText, Exporter: ExporterOTLP, Components: map[string]string{}},
		},
		API:           defaultAPI(),
		Orchestration: defaultOrchestration(),
	}
}

// ServiceNameFor returns the service.name a process should report:
// OTEL_SERVICE_NAME when that set it, else process (e.g.
// "tasker-orchestration") when non-empty, else the configured name.
func (t Telemetry) ServiceNameFor(process string) string {
	if t.serviceNameFromEnv || process == "" {
		return t.ServiceName
	}
	return process
}

// LevelFor returns the configured level name for a component: its own entry
// in Components, else Level.
func (l Logs) LevelFor(component string) string {
	if lv, ok := l.Components[component]; ok {
		return lv
	}
	return l.Level
}
