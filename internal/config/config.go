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

	// sources maps a dotted key to where its value came from ("default" when
	// absent), so Validate can name the file or variable behind a bad value.
	sources map[string]string
}

// Telemetry configures OpenTelemetry export and the process's own logs.
type Telemetry struct {
	// Enabled turns OTLP export of traces, metrics and logs on. Off, the
	// providers are no-ops but trace context still propagates.
	Enabled        bool     `toml:"enabled"`
	ServiceName    string   `toml:"service_name"`
	ServiceVersion string   `toml:"service_version"`
	OTLP           OTLP     `toml:"otlp"`
	Sampling       Sampling `toml:"sampling"`
	Spans          Spans    `toml:"spans"`
	Metrics        Metrics  `toml:"metrics"`
	Logs           Logs     `toml:"logs"`

	// serviceNameFromEnv is set when OTEL_SERVICE_NAME supplied ServiceName:
	// that operator choice must beat the per-process default name a binary
	// passes in (see ServiceNameFor).
	serviceNameFromEnv bool
}

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
	// Timeout bounds each export and the final flush at shutdown.
	Timeout Duration `toml:"timeout_seconds"`
	// BatchSizeLimit is the most spans or log records sent in one export.
	BatchSizeLimit int `toml:"batch_size_limit"`
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
	Enabled        bool     `toml:"enabled"`
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

// Log levels, as written in configuration.
const (
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
			Enabled:        false,
			ServiceName:    "tasker",
			ServiceVersion: "0.1.0",
			OTLP: OTLP{
				Endpoint:       "http://localhost:4317",
				Protocol:       ProtocolGRPC,
				Timeout:        Duration(10 * time.Second),
				BatchSizeLimit: 512,
			},
			Sampling: Sampling{Strategy: StrategyParentBasedAlwaysOn, Ratio: 1},
			Spans:    Spans{MaxAttributes: 128, MaxEvents: 128, MaxLinks: 128},
			Metrics: Metrics{
				Enabled:        true,
				ExportInterval: Duration(60 * time.Second),
			},
			Logs: Logs{Level: LevelInfo, Format: FormatText, Components: map[string]string{}},
		},
		API: defaultAPI(),
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
