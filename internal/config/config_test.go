package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoConfig is the checked-in config/tasker, relative to this package.
const repoConfig = "../../config/tasker"

// writeTree creates files (slash paths relative to a new temp dir) and returns
// the dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return dir
}

// envMap returns Getenv and Environ reading only m, so tests never see the
// real environment.
func envMap(m map[string]string) (func(string) string, func() []string) {
	return func(k string) string { return m[k] }, func() []string {
		out := make([]string, 0, len(m))
		for k, v := range m {
			out = append(out, k+"="+v)
		}
		return out
	}
}

func load(t *testing.T, dir, env string, vars map[string]string) (*Config, map[string]Source, error) {
	t.Helper()
	getenv, environ := envMap(vars)
	cfg, sources, err := Load(LoadOptions{Dir: dir, Env: env, Getenv: getenv, Environ: environ})
	bykey := map[string]Source{}
	for _, s := range sources {
		bykey[s.Key] = s
	}
	return cfg, bykey, err
}

func TestDefaultIsValid(t *testing.T) {
	require.NoError(t, Default().Validate())
}

// The base file documents the defaults; if they drift apart, a deployment
// without files would behave differently from one with only the base files.
func TestBaseFileEqualsDefault(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(repoConfig, "base", "telemetry.toml"))
	require.NoError(t, err)
	apiBase, err := os.ReadFile(filepath.Join(repoConfig, "base", "api.toml"))
	require.NoError(t, err)
	orchBase, err := os.ReadFile(filepath.Join(repoConfig, "base", "orchestration.toml"))
	require.NoError(t, err)
	dir := writeTree(t, map[string]string{
		"base/telemetry.toml":         string(base),
		"base/api.toml":               string(apiBase),
		"base/orchestration.toml":     string(orchBase),
		"environments/empty/.keep":    "",
		"environments/empty/notes.md": "not toml, ignored",
	})
	cfg, sources, err := load(t, dir, "empty", nil)
	require.NoError(t, err)
	assert.Equal(t, Default().Telemetry, cfg.Telemetry)
	assert.Equal(t, Default().API, cfg.API)
	assert.Equal(t, Default().Orchestration, cfg.Orchestration)
	for key, s := range sources {
		if key == "telemetry.enabled" {
			// Left unset on purpose, so an OTLP endpoint variable can turn export on.
			assert.Equal(t, FromDefault, s.From, key)
			continue
		}
		file := "telemetry.toml"
		if strings.HasPrefix(key, "api.") {
			file = "api.toml"
		}
		if strings.HasPrefix(key, "orchestration.") {
			file = "orchestration.toml"
		}
		assert.Equal(t, filepath.Join(dir, "base", file), s.From, key)
	}
}

func TestNoFilesGivesDefaultsWithDefaultProvenance(t *testing.T) {
	dir := writeTree(t, map[string]string{"base/.keep": "", "environments/production/.keep": ""})
	cfg, sources, err := load(t, dir, "", nil)
	require.NoError(t, err)
	assert.Equal(t, Default().Telemetry, cfg.Telemetry)
	require.Len(t, sources, 47)
	for key, s := range sources {
		assert.Equal(t, FromDefault, s.From, key)
	}
	assert.Equal(t, "10", sources["telemetry.otlp.timeout_seconds"].Value)
	assert.Equal(t, "parent_based_always_on", sources["telemetry.sampling.strategy"].Value)
	assert.Equal(t, "{}", sources["telemetry.logs.components"].Value)
}

func TestOverlayPrecedence(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"base/telemetry.toml": `
[telemetry]
enabled = false
service_name = "from-base"
[telemetry.otlp]
endpoint = "http://base:4317"
protocol = "grpc"
timeout_seconds = 3
[telemetry.sampling]
strategy = "trace_id_ratio"
ratio = 0.5
[telemetry.logs]
level = "info"
format = "text"
components = { worker = "warn", api = "info" }
`,
		"environments/staging/telemetry.toml": `
[telemetry]
enabled = true
[telemetry.otlp]
endpoint = "http://staging:4317"
timeout_seconds = 2.5
[telemetry.logs]
level = "warn"
components = { worker = "error" }
`,
	})
	vars := map[string]string{
		"TASKER_ENV":                     "staging",
		"TASKER_TELEMETRY_ENABLED":       "true",
		"TASKER_LOG_LEVEL":               "ERROR",
		"TASKER_LOG_FORMAT":              "json",
		"TASKER_LOG_LEVEL_WORKER":        "debug",
		"TASKER_LOG_LEVEL_SCHEDULER":     "warn",
		"OTEL_SDK_DISABLED":              "true",
		"OTEL_EXPORTER_OTLP_ENDPOINT":    "https://collector.example:4318",
		"OTEL_EXPORTER_OTLP_PROTOCOL":    "http/protobuf",
		"OTEL_EXPORTER_OTLP_TIMEOUT":     "1500",
		"OTEL_SERVICE_NAME":              "from-env",
		"OTEL_METRIC_EXPORT_INTERVAL":    "5000",
		"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
		"OTEL_TRACES_SAMPLER":            "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG":        "0.25",
	}
	cfg, src, err := load(t, dir, "", vars)
	require.NoError(t, err)
	tel := cfg.Telemetry
	envFile := filepath.Join(dir, "environments", "staging", "telemetry.toml")
	baseFile := filepath.Join(dir, "base", "telemetry.toml")

	// OTEL_SDK_DISABLED beats TASKER_TELEMETRY_ENABLED, which beats the files.
	assert.False(t, tel.Enabled)
	assert.Equal(t, "env OTEL_SDK_DISABLED", src["telemetry.enabled"].From)
	assert.Equal(t, "from-env", tel.ServiceName)
	assert.Equal(t, "https://collector.example:4318", tel.OTLP.Endpoint)
	assert.Equal(t, "env OTEL_EXPORTER_OTLP_ENDPOINT", src["telemetry.otlp.endpoint"].From)
	assert.Equal(t, ProtocolHTTPProtobuf, tel.OTLP.Protocol)
	assert.Equal(t, 1500*time.Millisecond, time.Duration(tel.OTLP.Timeout))
	assert.Equal(t, "1.5", src["telemetry.otlp.timeout_seconds"].Value)
	assert.Equal(t, 64, tel.OTLP.BatchSizeLimit)
	assert.Equal(t, 5*time.Second, time.Duration(tel.Metrics.ExportInterval))
	assert.Equal(t, StrategyParentBasedTraceIDRatio, tel.Sampling.Strategy)
	assert.Equal(t, 0.25, tel.Sampling.Ratio)
	assert.Equal(t, "env OTEL_TRACES_SAMPLER_ARG", src["telemetry.sampling.ratio"].From)

	// TASKER_* beat the files.
	assert.Equal(t, LevelError, tel.Logs.Level)
	assert.Equal(t, "env TASKER_LOG_LEVEL", src["telemetry.logs.level"].From)
	assert.Equal(t, FormatJSON, tel.Logs.Format)
	assert.Equal(t, map[string]string{"worker": "debug", "api": "info", "scheduler": "warn"}, tel.Logs.Components)
	assert.Equal(t, "env TASKER_LOG_LEVEL_WORKER", src["telemetry.logs.components.worker"].From)
	assert.Equal(t, baseFile, src["telemetry.logs.components.api"].From)

	// Without the variables, the environment file beats the base file, and
	// maps merge key by key.
	cfg, src, err = load(t, dir, "staging", nil)
	require.NoError(t, err)
	tel = cfg.Telemetry
	assert.True(t, tel.Enabled)
	assert.Equal(t, envFile, src["telemetry.enabled"].From)
	assert.Equal(t, "http://staging:4317", tel.OTLP.Endpoint)
	assert.Equal(t, 2500*time.Millisecond, time.Duration(tel.OTLP.Timeout))
	assert.Equal(t, "from-base", tel.ServiceName)
	assert.Equal(t, baseFile, src["telemetry.service_name"].From)
	assert.Equal(t, LevelWarn, tel.Logs.Level)
	assert.Equal(t, map[string]string{"worker": "error", "api": "info"}, tel.Logs.Components)
	assert.Equal(t, envFile, src["telemetry.logs.components.worker"].From)
	assert.Equal(t, 512, tel.OTLP.BatchSizeLimit)
	assert.Equal(t, FromDefault, src["telemetry.otlp.batch_size_limit"].From)
	assert.Equal(t, "0.5", src["telemetry.sampling.ratio"].Value)
}

// An OTLP endpoint or exporter variable turns export on, as with any
// OpenTelemetry SDK, unless something said "off" explicitly.
func TestOTELVariablesTurnExportOn(t *testing.T) {
	noFiles := writeTree(t, map[string]string{"base/.keep": "", "environments/development/.keep": ""})
	offInFile := writeTree(t, map[string]string{"base/.keep": "", "environments/development/telemetry.toml": "[telemetry]\nenabled = false\n"})
	cases := []struct {
		name    string
		dir     string
		vars    map[string]string
		enabled bool
		from    string
	}{
		{"nothing set", noFiles, nil, false, FromDefault},
		{"endpoint", noFiles, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"}, true, "env OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"traces endpoint", noFiles, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}, true, "env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"console exporter", noFiles, map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true, "env OTEL_TRACES_EXPORTER"},
		{"exporter none", noFiles, map[string]string{"OTEL_METRICS_EXPORTER": "none"}, false, FromDefault},
		{"OTEL_SDK_DISABLED wins", noFiles, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_SDK_DISABLED": "true"}, false, "env OTEL_SDK_DISABLED"},
		{"explicit env off wins", noFiles, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "TASKER_TELEMETRY_ENABLED": "false"}, false, "env TASKER_TELEMETRY_ENABLED"},
		{"explicit file off wins", offInFile, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"}, false,
			filepath.Join(offInFile, "environments", "development", "telemetry.toml")},
		{"checked-in development", repoConfig, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"}, true, "env OTEL_EXPORTER_OTLP_ENDPOINT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, src, err := load(t, c.dir, "development", c.vars)
			require.NoError(t, err)
			assert.Equal(t, c.enabled, cfg.Telemetry.Enabled)
			assert.Equal(t, c.from, src["telemetry.enabled"].From)
		})
	}
	// The test environment stays off whatever the shell exports.
	cfg, _, err := load(t, repoConfig, "test", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"})
	require.NoError(t, err)
	assert.False(t, cfg.Telemetry.Enabled)
}

func TestPerSignalVariables(t *testing.T) {
	dir := writeTree(t, map[string]string{"base/.keep": "", "environments/production/.keep": ""})
	cfg, src, err := load(t, dir, "", map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":         "http://collector:4317",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":  "http://jaeger:4318/v1/traces",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL":  "HTTP/PROTOBUF",
		"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
		"OTEL_METRICS_EXPORTER":               "None",
		"OTEL_LOGS_EXPORTER":                  "console",
		"OTEL_RESOURCE_ATTRIBUTES":            "deployment.environment.name=staging, team=pay%20ments,service.version=9.9.9",
	})
	require.NoError(t, err)
	tel := cfg.Telemetry
	assert.Equal(t, SignalTarget{Endpoint: "http://jaeger:4318/v1/traces", Protocol: ProtocolHTTPProtobuf, Exact: true}, tel.OTLP.Target("traces"))
	assert.Equal(t, SignalTarget{Endpoint: "http://collector:4317", Protocol: ProtocolGRPC}, tel.OTLP.Target("metrics"))
	assert.Equal(t, SignalTarget{Endpoint: "http://collector:4317", Protocol: ProtocolGRPC}, tel.OTLP.Target("logs"))
	assert.Equal(t, "env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", src["telemetry.otlp.traces_endpoint"].From)
	assert.Equal(t, ExporterOTLP, tel.Traces.Exporter)
	assert.Equal(t, ExporterNone, tel.Metrics.Exporter)
	assert.Equal(t, ExporterConsole, tel.Logs.Exporter)
	assert.Equal(t, "env OTEL_LOGS_EXPORTER", src["telemetry.logs.exporter"].From)
	assert.Equal(t, map[string]string{"deployment.environment.name": "staging", "team": "pay ments"}, tel.ResourceAttributes)
	assert.Equal(t, "env OTEL_RESOURCE_ATTRIBUTES", src["telemetry.resource_attributes.team"].From)
	assert.Equal(t, "9.9.9", tel.ServiceVersion)

	// service.name in OTEL_RESOURCE_ATTRIBUTES names the service, unless OTEL_SERVICE_NAME does.
	cfg, _, err = load(t, dir, "", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing"})
	require.NoError(t, err)
	assert.Equal(t, "billing", cfg.Telemetry.ServiceNameFor("tasker-worker"))
	cfg, _, err = load(t, dir, "", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing", "OTEL_SERVICE_NAME": "payments"})
	require.NoError(t, err)
	assert.Equal(t, "payments", cfg.Telemetry.ServiceNameFor("tasker-worker"))
}

func TestEnvEmptyValuesAreUnset(t *testing.T) {
	dir := writeTree(t, map[string]string{"base/.keep": "", "environments/production/.keep": ""})
	cfg, src, err := load(t, dir, "", map[string]string{"OTEL_SERVICE_NAME": "", "TASKER_LOG_LEVEL": "  "})
	require.NoError(t, err)
	assert.Equal(t, "tasker", cfg.Telemetry.ServiceName)
	assert.Equal(t, FromDefault, src["telemetry.logs.level"].From)
}

func TestOTELTracesSampler(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"base/telemetry.toml":           "[telemetry.sampling]\nratio = 0.3\n",
		"environments/production/.keep": "",
	})
	cases := []struct {
		sampler, arg string
		strategy     string
		ratio        float64
	}{
		{"always_on", "", StrategyTraceIDRatio, 1},
		{"always_on", "0.2", StrategyTraceIDRatio, 1}, // _ARG does not apply
		{"always_off", "", StrategyAlwaysOff, 0.3},
		{"traceidratio", "0.2", StrategyTraceIDRatio, 0.2},
		{"traceidratio", "", StrategyTraceIDRatio, 0.3}, // keeps the file's ratio
		{"ParentBased_Always_On", "", StrategyParentBasedAlwaysOn, 0.3},
		{"parentbased_always_off", "", StrategyParentBasedTraceIDRatio, 0},
		{"parentbased_traceidratio", "0.05", StrategyParentBasedTraceIDRatio, 0.05},
		{"", "0.7", StrategyParentBasedAlwaysOn, 0.7},
	}
	for _, c := range cases {
		t.Run(c.sampler+"/"+c.arg, func(t *testing.T) {
			cfg, _, err := load(t, dir, "", map[string]string{
				"OTEL_TRACES_SAMPLER": c.sampler, "OTEL_TRACES_SAMPLER_ARG": c.arg,
			})
			require.NoError(t, err)
			assert.Equal(t, c.strategy, cfg.Telemetry.Sampling.Strategy)
			assert.Equal(t, c.ratio, cfg.Telemetry.Sampling.Ratio)
		})
	}
}

func TestBadFileValues(t *testing.T) {
	const file = "environments/production/telemetry.toml"
	cases := []struct {
		name, body string
		want       string // after "<file>: "
	}{
		{"protocol", "[telemetry.otlp]\nprotocol = \"udp\"",
			`telemetry.otlp.protocol: "udp" is not one of grpc, http/protobuf`},
		{"ratio high", "[telemetry.sampling]\nratio = 1.5",
			`telemetry.sampling.ratio: 1.5 is not in [0, 1]`},
		{"ratio negative", "[telemetry.sampling]\nratio = -0.1",
			`telemetry.sampling.ratio: -0.1 is not in [0, 1]`},
		{"strategy", "[telemetry.sampling]\nstrategy = \"sometimes\"",
			`telemetry.sampling.strategy: "sometimes" is not one of parent_based_always_on, parent_based_trace_id_ratio, trace_id_ratio, always_off`},
		{"endpoint without scheme", "[telemetry.otlp]\nendpoint = \"localhost:4317\"",
			`telemetry.otlp.endpoint: "localhost:4317" is not an http:// or https:// URL with a host`},
		{"endpoint scheme", "[telemetry.otlp]\nendpoint = \"grpc://collector:4317\"",
			`telemetry.otlp.endpoint: "grpc://collector:4317" is not an http:// or https:// URL with a host`},
		{"endpoint no host", "[telemetry.otlp]\nendpoint = \"http://:4317\"",
			`telemetry.otlp.endpoint: "http://:4317" is not an http:// or https:// URL with a host`},
		{"endpoint port", "[telemetry.otlp]\nendpoint = \"http://collector:99999\"",
			`telemetry.otlp.endpoint: "http://collector:99999" has port "99999", which is not in 1..65535`},
		{"timeout zero", "[telemetry.otlp]\ntimeout_seconds = 0",
			`telemetry.otlp.timeout_seconds: 0 must be greater than 0`},
		{"batch zero", "[telemetry.otlp]\nbatch_size_limit = 0",
			`telemetry.otlp.batch_size_limit: 0 is not in 1..65536`},
		{"batch huge", "[telemetry.otlp]\nbatch_size_limit = 70000",
			`telemetry.otlp.batch_size_limit: 70000 is not in 1..65536`},
		{"max attributes", "[telemetry.spans]\nmax_attributes = 0",
			`telemetry.spans.max_attributes: 0 is less than 1`},
		{"max events", "[telemetry.spans]\nmax_events = -1",
			`telemetry.spans.max_events: -1 is less than 1`},
		{"max links", "[telemetry.spans]\nmax_links = 0",
			`telemetry.spans.max_links: 0 is less than 1`},
		{"interval", "[telemetry.metrics]\nexport_interval_seconds = 0.5",
			`telemetry.metrics.export_interval_seconds: 0.5 is less than 1 second`},
		{"level", "[telemetry.logs]\nlevel = \"verbose\"",
			`telemetry.logs.level: "verbose" is not one of trace, debug, info, warn, error`},
		{"format", "[telemetry.logs]\nformat = \"xml\"",
			`telemetry.logs.format: "xml" is not one of text, json`},
		{"component level", "[telemetry.logs]\ncomponents = { worker = \"loud\" }",
			`telemetry.logs.components.worker: "loud" is not one of trace, debug, info, warn, error`},
		{"component name", "[telemetry.logs]\ncomponents = { Worker = \"debug\" }",
			`telemetry.logs.components.Worker: component name "Worker" is not lower-case`},
		{"service name", "[telemetry]\nservice_name = \"\"",
			`telemetry.service_name: must not be empty`},
		{"type", "[telemetry.otlp]\nbatch_size_limit = \"big\"",
			`:2: telemetry.otlp.batch_size_limit: incompatible types: TOML value has type string; destination has type integer`},
		{"duration type", "[telemetry.otlp]\ntimeout_seconds = \"10s\"",
			`telemetry.otlp.timeout_seconds: "10s" is not a number of seconds`},
		{"shutdown timeout", "[telemetry.otlp]\nshutdown_timeout_seconds = 0",
			`telemetry.otlp.shutdown_timeout_seconds: 0 must be greater than 0`},
		{"signal endpoint", "[telemetry.otlp]\nmetrics_endpoint = \"collector:4318\"",
			`telemetry.otlp.metrics_endpoint: "collector:4318" is not an http:// or https:// URL`},
		{"signal protocol", "[telemetry.otlp]\nlogs_protocol = \"udp\"",
			`telemetry.otlp.logs_protocol: "udp" is not one of grpc, http/protobuf`},
		{"exporter", "[telemetry.traces]\nexporter = \"zipkin\"",
			`telemetry.traces.exporter: "zipkin" is not one of otlp, console, none`},
		{"resource service.name", "[telemetry]\nresource_attributes = { \"service.name\" = \"x\" }",
			`telemetry.resource_attributes.service.name: is set by telemetry.service_name`},
		{"retention zero", "[orchestration]\nretention_seconds = 0",
			`orchestration.retention_seconds: 0 would delete every task as it finishes`},
		{"prune interval", "[orchestration]\nprune_interval_seconds = 0.001",
			`orchestration.prune_interval_seconds: 0.001 is less than 0.01 seconds`},
		{"prune batch", "[orchestration]\nprune_batch = 0",
			`orchestration.prune_batch: 0 is less than 1`},
		{"schedule interval", "[orchestration]\nschedule_interval_seconds = -1",
			`orchestration.schedule_interval_seconds: -1 is less than 0.01 seconds`},
		{"syntax", "[telemetry\nenabled = true", ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"base/.keep": "", file: c.body})
			_, _, err := load(t, dir, "production", nil)
			require.Error(t, err)
			path := filepath.Join(dir, filepath.FromSlash(file))
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.Telemetry.OTLP.Protocol = "udp"
	cfg.Telemetry.Logs.Format = "xml"
	err := cfg.Validate()
	require.Error(t, err)
	// Values not loaded from anywhere carry no origin prefix.
	assert.Equal(t, `telemetry.otlp.protocol: "udp" is not one of grpc, http/protobuf`+"\n"+
		`telemetry.logs.format: "xml" is not one of text, json`, err.Error())
}

func TestBadEnvValues(t *testing.T) {
	cases := []struct {
		name, value string
		want        string
	}{
		{"TASKER_TELEMETRY_ENABLED", "yes", `env TASKER_TELEMETRY_ENABLED: "yes" is not one of true, false`},
		{"TASKER_LOG_LEVEL", "verbose", `env TASKER_LOG_LEVEL: telemetry.logs.level: "verbose" is not one of trace, debug, info, warn, error`},
		{"TASKER_LOG_FORMAT", "xml", `env TASKER_LOG_FORMAT: telemetry.logs.format: "xml" is not one of text, json`},
		{"TASKER_LOG_LEVEL_WORKER", "loud", `env TASKER_LOG_LEVEL_WORKER: telemetry.logs.components.worker: "loud" is not one of trace, debug, info, warn, error`},
		{"OTEL_SDK_DISABLED", "maybe", `env OTEL_SDK_DISABLED: "maybe" is not one of true, false`},
		{"TASKER_UI_TRACE_URL_TEMPLATE", "http://jaeger:16686/trace/", `env TASKER_UI_TRACE_URL_TEMPLATE: telemetry.ui.trace_url_template: "http://jaeger:16686/trace/" has no {trace_id} placeholder`},
		{"TASKER_UI_TRACE_URL_TEMPLATE", "jaeger/trace/{trace_id}", `env TASKER_UI_TRACE_URL_TEMPLATE: telemetry.ui.trace_url_template: "jaeger/trace/{trace_id}" is not an http:// or https:// URL`},
		{"TASKER_UI_JAEGER_QUERY_URL", "localhost:16686", `env TASKER_UI_JAEGER_QUERY_URL: telemetry.ui.jaeger_query_url: "localhost:16686" is not an http:// or https:// URL`},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", `env OTEL_EXPORTER_OTLP_ENDPOINT: telemetry.otlp.endpoint: "collector:4317" is not an http:// or https:// URL`},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", `env OTEL_EXPORTER_OTLP_PROTOCOL: telemetry.otlp.protocol: "http/json" is not one of grpc, http/protobuf`},
		{"OTEL_EXPORTER_OTLP_TIMEOUT", "10s", `env OTEL_EXPORTER_OTLP_TIMEOUT: "10s" is not a whole number of milliseconds`},
		{"OTEL_EXPORTER_OTLP_TIMEOUT", "0", `env OTEL_EXPORTER_OTLP_TIMEOUT: telemetry.otlp.timeout_seconds: 0 must be greater than 0`},
		{"OTEL_TRACES_SAMPLER", "jaeger_remote", `env OTEL_TRACES_SAMPLER: "jaeger_remote" is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio`},
		{"OTEL_TRACES_SAMPLER_ARG", "half", `env OTEL_TRACES_SAMPLER_ARG: "half" is not a number between 0 and 1`},
		{"OTEL_TRACES_SAMPLER_ARG", "2", `env OTEL_TRACES_SAMPLER_ARG: telemetry.sampling.ratio: 2 is not in [0, 1]`},
		{"OTEL_METRIC_EXPORT_INTERVAL", "500", `env OTEL_METRIC_EXPORT_INTERVAL: telemetry.metrics.export_interval_seconds: 0.5 is less than 1 second`},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "lots", `env OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "lots" is not a whole number`},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", `env OTEL_BSP_MAX_EXPORT_BATCH_SIZE: telemetry.otlp.batch_size_limit: 0 is not in 1..65536`},
		{"OTEL_TRACES_EXPORTER", "otlp,console", `env OTEL_TRACES_EXPORTER: "otlp,console" is not one of otlp, console, none (one exporter per signal)`},
		{"OTEL_METRICS_EXPORTER", "prometheus", `env OTEL_METRICS_EXPORTER: "prometheus" is not one of otlp, console, none`},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "jaeger:4317", `env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: telemetry.otlp.traces_endpoint: "jaeger:4317" is not an http:// or https:// URL`},
		{"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json", `env OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: telemetry.otlp.logs_protocol: "http/json" is not one of grpc, http/protobuf`},
		{"OTEL_RESOURCE_ATTRIBUTES", "team", `env OTEL_RESOURCE_ATTRIBUTES: "team" is not key=value`},
		{"OTEL_RESOURCE_ATTRIBUTES", "team=a%zz", `env OTEL_RESOURCE_ATTRIBUTES: "team=a%zz" has a value that is not percent-encoded correctly`},
		{"TASKER_ORCHESTRATION_RETENTION_SECONDS", "7d", `env TASKER_ORCHESTRATION_RETENTION_SECONDS: "7d" is not a number of seconds`},
		{"TASKER_ORCHESTRATION_RETENTION_SECONDS", "0", `env TASKER_ORCHESTRATION_RETENTION_SECONDS: orchestration.retention_seconds: 0 would delete`},
		{"TASKER_ORCHESTRATION_PRUNE_INTERVAL_SECONDS", "NaN", `env TASKER_ORCHESTRATION_PRUNE_INTERVAL_SECONDS: "NaN" is not a number of seconds`},
		{"TASKER_ORCHESTRATION_PRUNE_BATCH", "0", `env TASKER_ORCHESTRATION_PRUNE_BATCH: orchestration.prune_batch: 0 is less than 1`},
		{"TASKER_ORCHESTRATION_SCHEDULE_INTERVAL_SECONDS", "0", `env TASKER_ORCHESTRATION_SCHEDULE_INTERVAL_SECONDS: orchestration.schedule_interval_seconds: 0 is less than 0.01 seconds`},
		{"OTEL_SERVICE_NAME", "", ``}, // empty is unset: no error
		{"TASKER_ENV", "../base", `env TASKER_ENV: "../base" is not an environment name`},
		{"TASKER_ENV", "staging", `env TASKER_ENV: environment "staging" has no directory`},
	}
	dir := writeTree(t, map[string]string{"base/.keep": "", "environments/production/.keep": ""})
	for _, c := range cases {
		t.Run(c.name+"="+c.value, func(t *testing.T) {
			_, _, err := load(t, dir, "", map[string]string{c.name: c.value})
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"base/telemetry.toml":           "[telemetry.otlp]\nendpiont = \"http://x:4317\"\n",
		"environments/production/.keep": "",
	})
	_, _, err := load(t, dir, "", nil)
	require.Error(t, err)
	assert.Equal(t, filepath.Join(dir, "base", "telemetry.toml")+
		": unknown key telemetry.otlp.endpiont ([telemetry.otlp] allows endpoint, protocol, timeout_seconds, shutdown_timeout_seconds, batch_size_limit, "+
		"traces_endpoint, traces_protocol, metrics_endpoint, metrics_protocol, logs_endpoint, logs_protocol)",
		err.Error())

	// An unknown section is reported once, not once per key inside it.
	dir = writeTree(t, map[string]string{
		"base/db.toml":                  "[database]\nurl = \"x\"\npool = 4\n",
		"environments/production/.keep": "",
	})
	_, _, err = load(t, dir, "", nil)
	require.Error(t, err)
	assert.Equal(t, filepath.Join(dir, "base", "db.toml")+": unknown key database (top level allows telemetry, api, orchestration)", err.Error())
}

func TestKeySetTwiceInOneLayer(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"base/a.toml":                   "[telemetry]\nservice_name = \"a\"\n",
		"base/b.toml":                   "[telemetry]\nservice_name = \"b\"\n",
		"environments/production/.keep": "",
	})
	_, _, err := load(t, dir, "", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "b.toml: telemetry.service_name is also set in "+filepath.Join(dir, "base", "a.toml"))
}

func TestCheckedInEnvironments(t *testing.T) {
	for _, env := range []string{"development", "test", "production"} {
		t.Run(env, func(t *testing.T) {
			cfg, _, err := load(t, repoConfig, env, nil)
			require.NoError(t, err)
			if env != "production" {
				// Nothing may need a collector outside production.
				assert.False(t, cfg.Telemetry.Enabled)
				assert.Equal(t, FormatText, cfg.Telemetry.Logs.Format)
			}
		})
	}
	cfg, src, err := load(t, repoConfig, "production", nil)
	require.NoError(t, err)
	tel := cfg.Telemetry
	assert.True(t, tel.Enabled)
	assert.Equal(t, StrategyParentBasedTraceIDRatio, tel.Sampling.Strategy)
	assert.Equal(t, 0.1, tel.Sampling.Ratio)
	assert.Equal(t, FormatJSON, tel.Logs.Format)
	assert.Equal(t, filepath.Join(repoConfig, "environments", "production", "telemetry.toml"), src["telemetry.sampling.ratio"].From)
}

// The binary must work from any directory, with the files compiled in.
func TestEmbeddedFallback(t *testing.T) {
	t.Chdir(t.TempDir())
	getenv, environ := envMap(map[string]string{"TASKER_ENV": "production"})
	cfg, sources, err := Load(LoadOptions{Getenv: getenv, Environ: environ})
	require.NoError(t, err)
	assert.Equal(t, 0.1, cfg.Telemetry.Sampling.Ratio)
	from := map[string]string{}
	for _, s := range sources {
		from[s.Key] = s.From
	}
	assert.Equal(t, "embedded:config/tasker/environments/production/telemetry.toml", from["telemetry.sampling.ratio"])
	assert.Equal(t, "embedded:config/tasker/base/telemetry.toml", from["telemetry.otlp.timeout_seconds"])

	// ./config/tasker, when present, wins over the embedded copy.
	require.NoError(t, os.MkdirAll(filepath.Join("config", "tasker", "base"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join("config", "tasker", "environments", "production"), 0o755))
	_, sources, err = Load(LoadOptions{Getenv: getenv, Environ: environ})
	require.NoError(t, err)
	for _, s := range sources {
		assert.Equal(t, FromDefault, s.From, s.Key)
	}
}

func TestMissingDir(t *testing.T) {
	_, _, err := Load(LoadOptions{Dir: filepath.Join(t.TempDir(), "nope"), Getenv: func(string) string { return "" }})
	require.ErrorContains(t, err, "config directory")
	dir := writeTree(t, map[string]string{"environments/production/.keep": ""})
	_, _, err = load(t, dir, "", nil)
	require.ErrorContains(t, err, "has no base/ directory")
}

func TestServiceNameFor(t *testing.T) {
	dir := writeTree(t, map[string]string{"base/.keep": "", "environments/production/.keep": ""})
	cfg, _, err := load(t, dir, "", nil)
	require.NoError(t, err)
	assert.Equal(t, "tasker-worker", cfg.Telemetry.ServiceNameFor("tasker-worker"))
	assert.Equal(t, "tasker", cfg.Telemetry.ServiceNameFor(""))

	// An operator's OTEL_SERVICE_NAME beats the name the binary suggests.
	cfg, _, err = load(t, dir, "", map[string]string{"OTEL_SERVICE_NAME": "billing-worker"})
	require.NoError(t, err)
	assert.Equal(t, "billing-worker", cfg.Telemetry.ServiceNameFor("tasker-worker"))
}

func TestLevelFor(t *testing.T) {
	l := Logs{Level: LevelInfo, Components: map[string]string{"worker": LevelDebug}}
	assert.Equal(t, LevelDebug, l.LevelFor("worker"))
	assert.Equal(t, LevelInfo, l.LevelFor("api"))
}

func TestSourcesAreSortedAndComplete(t *testing.T) {
	_, sources, err := Load(LoadOptions{Dir: repoConfig, Env: "development", Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	var keys []string
	for _, s := range sources {
		keys = append(keys, s.Key)
		assert.NotEmpty(t, s.From)
	}
	assert.IsIncreasing(t, keys)
	assert.Contains(t, strings.Join(keys, " "), "telemetry.metrics.correlation_id_label")
}

func TestAPITokensFromEnvAreHashed(t *testing.T) {
	dir := writeTree(t, map[string]string{"base/.keep": "", "environments/production/.keep": ""})
	cfg, sources, err := load(t, dir, "", map[string]string{EnvAPITokens: "new-token, old-token", EnvAPIReadTokens: "reader"})
	require.NoError(t, err)
	require.Equal(t, []string{TokenDigest("new-token"), TokenDigest("old-token")}, cfg.API.Auth.TokenSHA256)
	require.Equal(t, []string{TokenDigest("reader")}, cfg.API.Auth.ReadTokenSHA256)
	require.Equal(t, "env "+EnvAPITokens, sources["api.auth.token_sha256"].From)
	for _, s := range sources {
		require.NotContains(t, s.Value, "new-token", "a token must never be kept or shown in plain text")
	}
}

func TestAPIConfigValidation(t *testing.T) {
	c := Default()
	c.API.Auth.TokenSHA256 = []string{"my-secret-token"}
	c.API.TLS.CertFile = "cert.pem"
	c.API.Timeouts.Read = 0
	err := c.Validate()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "my-secret-token")
	require.ErrorContains(t, err, "api.auth.token_sha256: entry 1 is not a hex SHA-256 digest")
	require.ErrorContains(t, err, "api.tls.cert_file")
	require.ErrorContains(t, err, "api.timeouts.read_seconds")

	c = Default()
	c.API.Auth.Mode = AuthRequired
	require.ErrorContains(t, c.Validate(), `api.auth.mode: "required" needs at least one token`)
}

// A server or worker started without TASKER_ENV runs the production profile:
// info-level logs, not development's debug.
func TestDefaultEnvironmentIsProduction(t *testing.T) {
	cfg, sources, err := Load(LoadOptions{Dir: repoConfig, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	require.Equal(t, LevelInfo, cfg.Telemetry.Logs.Level)
	for _, s := range sources {
		if s.Key == "telemetry.logs.level" {
			require.Contains(t, s.From, filepath.Join("environments", "production"))
		}
	}
}

func TestOrchestrationKeys(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"base/.keep": "",
		"environments/production/orchestration.toml": "[orchestration]\nretention_seconds = -1\nprune_batch = 50\n",
	})
	cfg, sources, err := load(t, dir, "", map[string]string{EnvPruneInterval: "2.5", EnvScheduleInterval: "0.2"})
	require.NoError(t, err)
	assert.Equal(t, Orchestration{Retention: Duration(-time.Second), PruneInterval: Duration(2500 * time.Millisecond),
		PruneBatch: 50, ScheduleInterval: Duration(200 * time.Millisecond)}, cfg.Orchestration)
	file := filepath.Join(dir, "environments", "production", "orchestration.toml")
	assert.Equal(t, Source{Key: "orchestration.retention_seconds", Value: "-1", From: file}, sources["orchestration.retention_seconds"])
	assert.Equal(t, "env "+EnvPruneInterval, sources["orchestration.prune_interval_seconds"].From)
	assert.Equal(t, "2.5", sources["orchestration.prune_interval_seconds"].Value)
	assert.Equal(t, "env "+EnvScheduleInterval, sources["orchestration.schedule_interval_seconds"].From)
	assert.Equal(t, file, sources["orchestration.prune_batch"].From)

	// The variable beats the file.
	cfg, _, err = load(t, dir, "", map[string]string{EnvRetention: "86400", EnvPruneBatch: "7"})
	require.NoError(t, err)
	assert.Equal(t, Duration(24*time.Hour), cfg.Orchestration.Retention)
	assert.Equal(t, 7, cfg.Orchestration.PruneBatch)
}
