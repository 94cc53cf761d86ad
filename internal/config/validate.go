package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// componentRE keeps component names expressible as TASKER_LOG_LEVEL_<NAME>
// variables, which is also why they are lower case: the variable's suffix is
// lower-cased to find the component.
var componentRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Validate checks every value and returns all problems at once, each naming
// where the value came from (file or environment variable), the key, and what
// is allowed, e.g.
//
//	config/tasker/environments/production/telemetry.toml: telemetry.otlp.protocol: "udp" is not one of grpc, http/protobuf
func (c *Config) Validate() error {
	v := validator{c: c}
	t := c.Telemetry

	if strings.TrimSpace(t.ServiceName) == "" {
		v.bad("telemetry.service_name", "must not be empty")
	}
	if err := checkEndpoint(t.OTLP.Endpoint); err != nil {
		v.bad("telemetry.otlp.endpoint", "%q %v", t.OTLP.Endpoint, err)
	}
	v.oneOf("telemetry.otlp.protocol", t.OTLP.Protocol, ProtocolGRPC, ProtocolHTTPProtobuf)
	if t.OTLP.Timeout <= 0 {
		v.bad("telemetry.otlp.timeout_seconds", "%s must be greater than 0", t.OTLP.Timeout)
	}
	if t.OTLP.ShutdownTimeout <= 0 {
		v.bad("telemetry.otlp.shutdown_timeout_seconds", "%s must be greater than 0", t.OTLP.ShutdownTimeout)
	}
	for _, s := range []struct{ name, endpoint, protocol string }{
		{"traces", t.OTLP.TracesEndpoint, t.OTLP.TracesProtocol},
		{"metrics", t.OTLP.MetricsEndpoint, t.OTLP.MetricsProtocol},
		{"logs", t.OTLP.LogsEndpoint, t.OTLP.LogsProtocol},
	} {
		if s.endpoint != "" {
			if err := checkEndpoint(s.endpoint); err != nil {
				v.bad("telemetry.otlp."+s.name+"_endpoint", "%q %v", s.endpoint, err)
			}
		}
		if s.protocol != "" {
			v.oneOf("telemetry.otlp."+s.name+"_protocol", s.protocol, ProtocolGRPC, ProtocolHTTPProtobuf)
		}
	}
	exporters := []string{ExporterOTLP, ExporterConsole, ExporterNone}
	v.oneOf("telemetry.traces.exporter", t.Traces.Exporter, exporters...)
	v.oneOf("telemetry.metrics.exporter", t.Metrics.Exporter, exporters...)
	v.oneOf("telemetry.logs.exporter", t.Logs.Exporter, exporters...)
	attrKeys := make([]string, 0, len(t.ResourceAttributes))
	for k := range t.ResourceAttributes {
		attrKeys = append(attrKeys, k)
	}
	sort.Strings(attrKeys)
	for _, k := range attrKeys {
		switch k {
		case "service.name", "service.version":
			v.bad("telemetry.resource_attributes."+k, "is set by telemetry.service_name and telemetry.service_version")
		}
	}
	if t.OTLP.BatchSizeLimit < 1 || t.OTLP.BatchSizeLimit > 65536 {
		v.bad("telemetry.otlp.batch_size_limit", "%d is not in 1..65536", t.OTLP.BatchSizeLimit)
	}

	v.oneOf("telemetry.sampling.strategy", t.Sampling.Strategy,
		StrategyParentBasedAlwaysOn, StrategyParentBasedTraceIDRatio, StrategyTraceIDRatio, StrategyAlwaysOff)
	if r := t.Sampling.Ratio; math.IsNaN(r) || r < 0 || r > 1 {
		v.bad("telemetry.sampling.ratio", "%s is not in [0, 1]", strconv.FormatFloat(r, 'g', -1, 64))
	}

	v.atLeastOne("telemetry.spans.max_attributes", t.Spans.MaxAttributes)
	v.atLeastOne("telemetry.spans.max_events", t.Spans.MaxEvents)
	v.atLeastOne("telemetry.spans.max_links", t.Spans.MaxLinks)

	if time.Duration(t.Metrics.ExportInterval) < time.Second {
		v.bad("telemetry.metrics.export_interval_seconds", "%s is less than 1 second", t.Metrics.ExportInterval)
	}

	levels := []string{LevelTrace, LevelDebug, LevelInfo, LevelWarn, LevelError}
	v.oneOf("telemetry.logs.level", t.Logs.Level, levels...)
	v.oneOf("telemetry.logs.format", t.Logs.Format, FormatText, FormatJSON)
	components := make([]string, 0, len(t.Logs.Components))
	for name := range t.Logs.Components {
		components = append(components, name)
	}
	sort.Strings(components)
	for _, name := range components {
		key := "telemetry.logs.components." + name
		if !componentRE.MatchString(name) {
			v.bad(key, "component name %q is not lower-case letters, digits and _ (starting with a letter)", name)
		}
		v.oneOf(key, t.Logs.Components[name], levels...)
	}

	if tpl := t.UI.TraceURLTemplate; tpl != "" {
		if !strings.Contains(tpl, TraceIDPlaceholder) {
			v.bad("telemetry.ui.trace_url_template", "%q has no %s placeholder", tpl, TraceIDPlaceholder)
		} else if err := checkEndpoint(strings.ReplaceAll(tpl, TraceIDPlaceholder, "0")); err != nil {
			v.bad("telemetry.ui.trace_url_template", "%q %v", tpl, err)
		}
	}
	if u := t.UI.JaegerQueryURL; u != "" {
		if err := checkEndpoint(u); err != nil {
			v.bad("telemetry.ui.jaeger_query_url", "%q %v", u, err)
		}
	}
	v.api(c.API)
	v.orchestration(c.Orchestration)
	return errors.Join(v.errs...)
}

type validator struct {
	c    *Config
	errs []error
}

func (v *validator) bad(key, format string, args ...any) {
	prefix := ""
	if from := v.c.origin(key); from != FromDefault {
		prefix = from + ": "
	}
	v.errs = append(v.errs, fmt.Errorf("%s%s: %s", prefix, key, fmt.Sprintf(format, args...)))
}

func (v *validator) oneOf(key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.bad(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) atLeastOne(key string, n int) {
	if n < 1 {
		v.bad(key, "%d is less than 1", n)
	}
}

// checkEndpoint accepts what the OTLP exporters can dial: an http or https
// URL with a host and, optionally, a numeric port.
func checkEndpoint(s string) error {
	const want = `is not an http:// or https:// URL with a host, e.g. "http://localhost:4317"`
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errors.New(want)
	}
	if _, port, err := net.SplitHostPort(u.Host); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("has port %q, which is not in 1..65535", port)
		}
	}
	return nil
}
