package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Environment variables Load reads. The TASKER_* ones are applied first so the
// standard OTEL_* ones win where both touch a key (e.g. TASKER_TELEMETRY_ENABLED
// versus OTEL_SDK_DISABLED).
const (
	EnvTelemetryEnabled = "TASKER_TELEMETRY_ENABLED"
	EnvLogLevel         = "TASKER_LOG_LEVEL"
	EnvLogFormat        = "TASKER_LOG_FORMAT"

	EnvUITraceURLTemplate = "TASKER_UI_TRACE_URL_TEMPLATE"
	EnvUIJaegerQueryURL   = "TASKER_UI_JAEGER_QUERY_URL"

	// EnvLogLevelComponentPrefix + an upper-case component name sets that
	// component's level: TASKER_LOG_LEVEL_WORKER=debug.
	EnvLogLevelComponentPrefix = "TASKER_LOG_LEVEL_"

	// EnvAPITokens and EnvAPIReadTokens hold comma-separated tokens (full
	// access, read-only); they are hashed as they are read and add to the
	// digests of the files. EnvAPIAuth sets api.auth.mode.
	EnvAPITokens     = "TASKER_API_TOKENS"
	EnvAPIReadTokens = "TASKER_API_READ_TOKENS"
	EnvAPIAuth       = "TASKER_API_AUTH"
	EnvAPITLSCert    = "TASKER_API_TLS_CERT_FILE"
	EnvAPITLSKey     = "TASKER_API_TLS_KEY_FILE"

	EnvRetention        = "TASKER_ORCHESTRATION_RETENTION_SECONDS"
	EnvPruneInterval    = "TASKER_ORCHESTRATION_PRUNE_INTERVAL_SECONDS"
	EnvPruneBatch       = "TASKER_ORCHESTRATION_PRUNE_BATCH"
	EnvScheduleInterval = "TASKER_ORCHESTRATION_SCHEDULE_INTERVAL_SECONDS"

	EnvOTELSDKDisabled       = "OTEL_SDK_DISABLED"
	EnvOTELServiceName       = "OTEL_SERVICE_NAME"
	EnvOTELEndpoint          = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvOTELProtocol          = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvOTELTimeout           = "OTEL_EXPORTER_OTLP_TIMEOUT"
	EnvOTELTracesSampler     = "OTEL_TRACES_SAMPLER"
	EnvOTELTracesSamplerArg  = "OTEL_TRACES_SAMPLER_ARG"
	EnvOTELMetricInterval    = "OTEL_METRIC_EXPORT_INTERVAL"
	EnvOTELBSPMaxExportBatch = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
	EnvOTELResourceAttrs     = "OTEL_RESOURCE_ATTRIBUTES"

	EnvOTELTracesExporter  = "OTEL_TRACES_EXPORTER"
	EnvOTELMetricsExporter = "OTEL_METRICS_EXPORTER"
	EnvOTELLogsExporter    = "OTEL_LOGS_EXPORTER"

	EnvOTELTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvOTELMetricsEndpoint = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
	EnvOTELLogsEndpoint    = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
	EnvOTELTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvOTELMetricsProtocol = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
	EnvOTELLogsProtocol    = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
)

// otelSamplerNames are the OTEL_TRACES_SAMPLER values Tasker understands.
const otelSamplerNames = "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"

// otelSampler maps an OTEL_TRACES_SAMPLER value onto a strategy. Samplers
// that have no ratio of their own get the ratio that reproduces them
// (fixed=true); the others keep the configured ratio or take _ARG.
func otelSampler(name string) (strategy string, ratio float64, fixed, ok bool) {
	switch name {
	case "always_on":
		return StrategyTraceIDRatio, 1, true, true
	case "always_off":
		return StrategyAlwaysOff, 0, false, true
	case "traceidratio":
		return StrategyTraceIDRatio, 0, false, true
	case "parentbased_always_on":
		return StrategyParentBasedAlwaysOn, 0, false, true
	case "parentbased_always_off":
		return StrategyParentBasedTraceIDRatio, 0, true, true
	case "parentbased_traceidratio":
		return StrategyParentBasedTraceIDRatio, 0, false, true
	}
	return "", 0, false, false
}

type envApplier struct {
	cfg    *Config
	getenv func(string) string
	errs   []error
}

// get treats an empty value as unset, as the OpenTelemetry specification
// requires, so `OTEL_SERVICE_NAME= tasker server` keeps the file's value.
func (a *envApplier) get(name string) (string, bool) {
	v := strings.TrimSpace(a.getenv(name))
	return v, v != ""
}

func (a *envApplier) set(key, name string) { a.cfg.sources[key] = "env " + name }

func (a *envApplier) fail(name, value, format string, args ...any) {
	a.errs = append(a.errs, fmt.Errorf("env %s: %q %s", name, value, fmt.Sprintf(format, args...)))
}

func (a *envApplier) bool(name, key string, dst *bool) {
	v, ok := a.get(name)
	if !ok {
		return
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		a.fail(name, v, "is not one of true, false")
		return
	}
	*dst = b
	a.set(key, name)
}

func (a *envApplier) str(name, key string, dst *string, normalize func(string) string) {
	if v, ok := a.get(name); ok {
		*dst = normalize(v)
		a.set(key, name)
	}
}

// millis reads a whole number of milliseconds, the unit of every OTEL_*
// duration variable.
func (a *envApplier) millis(name, key string, dst *Duration) {
	v, ok := a.get(name)
	if !ok {
		return
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		a.fail(name, v, "is not a whole number of milliseconds")
		return
	}
	*dst = Duration(time.Duration(n) * time.Millisecond)
	a.set(key, name)
}

// seconds reads a number of seconds (fractions allowed), the unit of the
// *_seconds keys the TASKER_* variables set.
func (a *envApplier) seconds(name, key string, dst *Duration) {
	v, ok := a.get(name)
	if !ok {
		return
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		a.fail(name, v, "is not a number of seconds")
		return
	}
	*dst = Duration(f * float64(time.Second))
	a.set(key, name)
}

func (a *envApplier) int(name, key string, dst *int) {
	v, ok := a.get(name)
	if !ok {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		a.fail(name, v, "is not a whole number")
		return
	}
	*dst = n
	a.set(key, name)
}

func applyEnv(cfg *Config, getenv func(string) string, environ func() []string) error {
	a := &envApplier{cfg: cfg, getenv: getenv}
	t := &cfg.Telemetry
	lower := strings.ToLower

	a.bool(EnvTelemetryEnabled, "telemetry.enabled", &t.Enabled)
	a.str(EnvLogLevel, "telemetry.logs.level", &t.Logs.Level, lower)
	a.str(EnvLogFormat, "telemetry.logs.format", &t.Logs.Format, lower)
	a.str(EnvUITraceURLTemplate, "telemetry.ui.trace_url_template", &t.UI.TraceURLTemplate, strings.TrimSpace)
	a.str(EnvUIJaegerQueryURL, "telemetry.ui.jaeger_query_url", &t.UI.JaegerQueryURL, strings.TrimSpace)
	for _, c := range logComponents(t.Logs.Components, environ) {
		name := EnvLogLevelComponentPrefix + strings.ToUpper(c)
		if v, ok := a.get(name); ok {
			if t.Logs.Components == nil {
				t.Logs.Components = map[string]string{}
			}
			t.Logs.Components[c] = lower(v)
			a.set("telemetry.logs.components."+c, name)
		}
	}

	if v, ok := a.get(EnvAPITokens); ok {
		cfg.API.Auth.TokenSHA256 = append(cfg.API.Auth.TokenSHA256, parseTokens(v)...)
		a.set("api.auth.token_sha256", EnvAPITokens)
	}
	if v, ok := a.get(EnvAPIReadTokens); ok {
		cfg.API.Auth.ReadTokenSHA256 = append(cfg.API.Auth.ReadTokenSHA256, parseTokens(v)...)
		a.set("api.auth.read_token_sha256", EnvAPIReadTokens)
	}
	a.str(EnvAPIAuth, "api.auth.mode", &cfg.API.Auth.Mode, lower)
	a.str(EnvAPITLSCert, "api.tls.cert_file", &cfg.API.TLS.CertFile, strings.TrimSpace)
	a.str(EnvAPITLSKey, "api.tls.key_file", &cfg.API.TLS.KeyFile, strings.TrimSpace)

	o := &cfg.Orchestration
	a.seconds(EnvRetention, "orchestration.retention_seconds", &o.Retention)
	a.seconds(EnvPruneInterval, "orchestration.prune_interval_seconds", &o.PruneInterval)
	a.int(EnvPruneBatch, "orchestration.prune_batch", &o.PruneBatch)
	a.seconds(EnvScheduleInterval, "orchestration.schedule_interval_seconds", &o.ScheduleInterval)

	sdkDisabled := false
	if v, ok := a.get(EnvOTELSDKDisabled); ok {
		// The specification treats only "true" as true; anything but
		// "false" is more likely a typo than a wish to keep exporting.
		switch {
		case strings.EqualFold(v, "true"):
			sdkDisabled = true
			t.Enabled = false
			a.set("telemetry.enabled", EnvOTELSDKDisabled)
		case strings.EqualFold(v, "false"):
		default:
			a.fail(EnvOTELSDKDisabled, v, "is not one of true, false")
		}
	}
	if v, ok := a.get(EnvOTELServiceName); ok {
		t.ServiceName = v
		t.serviceNameFromEnv = true
		a.set("telemetry.service_name", EnvOTELServiceName)
	}
	a.str(EnvOTELEndpoint, "telemetry.otlp.endpoint", &t.OTLP.Endpoint, strings.TrimSpace)
	a.str(EnvOTELProtocol, "telemetry.otlp.protocol", &t.OTLP.Protocol, lower)
	a.str(EnvOTELTracesEndpoint, "telemetry.otlp.traces_endpoint", &t.OTLP.TracesEndpoint, strings.TrimSpace)
	a.str(EnvOTELTracesProtocol, "telemetry.otlp.traces_protocol", &t.OTLP.TracesProtocol, lower)
	a.str(EnvOTELMetricsEndpoint, "telemetry.otlp.metrics_endpoint", &t.OTLP.MetricsEndpoint, strings.TrimSpace)
	a.str(EnvOTELMetricsProtocol, "telemetry.otlp.metrics_protocol", &t.OTLP.MetricsProtocol, lower)
	a.str(EnvOTELLogsEndpoint, "telemetry.otlp.logs_endpoint", &t.OTLP.LogsEndpoint, strings.TrimSpace)
	a.str(EnvOTELLogsProtocol, "telemetry.otlp.logs_protocol", &t.OTLP.LogsProtocol, lower)
	a.exporter(EnvOTELTracesExporter, "telemetry.traces.exporter", &t.Traces.Exporter)
	a.exporter(EnvOTELMetricsExporter, "telemetry.metrics.exporter", &t.Metrics.Exporter)
	a.exporter(EnvOTELLogsExporter, "telemetry.logs.exporter", &t.Logs.Exporter)
	a.resourceAttributes(t)
	a.millis(EnvOTELTimeout, "telemetry.otlp.timeout_seconds", &t.OTLP.Timeout)
	a.millis(EnvOTELMetricInterval, "telemetry.metrics.export_interval_seconds", &t.Metrics.ExportInterval)
	a.int(EnvOTELBSPMaxExportBatch, "telemetry.otlp.batch_size_limit", &t.OTLP.BatchSizeLimit)

	// A sampler with a fixed ratio (always_on, parentbased_always_off)
	// ignores OTEL_TRACES_SAMPLER_ARG, as the specification says; the ratio
	// samplers take it, or keep the configured ratio when it is unset.
	argApplies := true
	if v, ok := a.get(EnvOTELTracesSampler); ok {
		strategy, ratio, fixed, known := otelSampler(lower(v))
		if !known {
			a.fail(EnvOTELTracesSampler, v, "is not one of %s", otelSamplerNames)
		} else {
			t.Sampling.Strategy = strategy
			a.set("telemetry.sampling.strategy", EnvOTELTracesSampler)
			if fixed {
				t.Sampling.Ratio = ratio
				a.set("telemetry.sampling.ratio", EnvOTELTracesSampler)
				argApplies = false
			}
		}
	}
	if v, ok := a.get(EnvOTELTracesSamplerArg); ok && argApplies {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil {
			a.fail(EnvOTELTracesSamplerArg, v, "is not a number between 0 and 1")
		} else {
			t.Sampling.Ratio = r
			a.set("telemetry.sampling.ratio", EnvOTELTracesSamplerArg)
		}
	}

	// An operator who points the standard variables at a collector expects
	// export, as from any other OpenTelemetry SDK; only an explicit "off"
	// (OTEL_SDK_DISABLED, a file, TASKER_TELEMETRY_ENABLED) says otherwise.
	if !sdkDisabled && a.cfg.origin("telemetry.enabled") == FromDefault {
		if name := a.exportRequested(); name != "" {
			t.Enabled = true
			a.set("telemetry.enabled", name)
		}
	}
	return errors.Join(a.errs...)
}

// exportRequested names the first variable that asks for export: an OTLP
// endpoint, or a signal exporter other than none.
func (a *envApplier) exportRequested() string {
	for _, name := range []string{EnvOTELEndpoint, EnvOTELTracesEndpoint, EnvOTELMetricsEndpoint, EnvOTELLogsEndpoint} {
		if _, ok := a.get(name); ok {
			return name
		}
	}
	for _, name := range []string{EnvOTELTracesExporter, EnvOTELMetricsExporter, EnvOTELLogsExporter} {
		if v, ok := a.get(name); ok && !strings.EqualFold(v, ExporterNone) {
			return name
		}
	}
	return ""
}

// exporter reads one OTEL_<SIGNAL>_EXPORTER. The specification allows a
// list; Tasker sends a signal to one place, so a list is an error rather
// than a silent choice.
func (a *envApplier) exporter(name, key string, dst *string) {
	v, ok := a.get(name)
	if !ok {
		return
	}
	switch lv := strings.ToLower(v); lv {
	case ExporterOTLP, ExporterConsole, ExporterNone:
		*dst = lv
		a.set(key, name)
	default:
		a.fail(name, v, "is not one of %s, %s, %s (one exporter per signal)", ExporterOTLP, ExporterConsole, ExporterNone)
	}
}

// resourceAttributes reads OTEL_RESOURCE_ATTRIBUTES: comma-separated
// key=value pairs, values percent-encoded (W3C baggage format without
// properties). Pairs are added to those from the files.
func (a *envApplier) resourceAttributes(t *Telemetry) {
	v, ok := a.get(EnvOTELResourceAttrs)
	if !ok {
		return
	}
	for pair := range strings.SplitSeq(v, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, val, found := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !found || k == "" {
			a.fail(EnvOTELResourceAttrs, pair, "is not key=value")
			continue
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			a.fail(EnvOTELResourceAttrs, pair, "has a value that is not percent-encoded correctly")
			continue
		}
		// The specification's order: OTEL_SERVICE_NAME beats a service.name
		// here, which beats the configured one.
		switch k {
		case "service.name":
			if _, set := a.get(EnvOTELServiceName); !set {
				t.ServiceName = dec
				t.serviceNameFromEnv = true
				a.set("telemetry.service_name", EnvOTELResourceAttrs)
			}
			continue
		case "service.version":
			t.ServiceVersion = dec
			a.set("telemetry.service_version", EnvOTELResourceAttrs)
			continue
		}
		if t.ResourceAttributes == nil {
			t.ResourceAttributes = map[string]string{}
		}
		t.ResourceAttributes[k] = dec
		a.set("telemetry.resource_attributes."+k, EnvOTELResourceAttrs)
	}
}

// logComponents lists the components a TASKER_LOG_LEVEL_<COMPONENT> variable
// may address: those in the files, plus those found in the environment.
func logComponents(fromFiles map[string]string, environ func() []string) []string {
	seen := map[string]bool{}
	for c := range fromFiles {
		seen[c] = true
	}
	if environ != nil {
		for _, kv := range environ() {
			name, _, _ := strings.Cut(kv, "=")
			if c, ok := strings.CutPrefix(name, EnvLogLevelComponentPrefix); ok && c != "" {
				seen[strings.ToLower(c)] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
