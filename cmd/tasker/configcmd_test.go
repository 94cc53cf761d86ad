package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

func runConfigShow(t *testing.T, args ...string) result {
	t.Helper()
	root := &cobra.Command{Use: "tasker"}
	var g globalFlags
	g.bind(root, func(string) string { return "" })
	root.AddCommand(newConfigCmd(&g))
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append([]string{"config", "show", "--dir", "../../config/tasker"}, args...))
	code := execute(t.Context(), root)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// config show lists the shutdown flush bound, and says when an OTLP
// endpoint variable is what turned export on.
func TestConfigShowTelemetry(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	res := runConfigShow(t, "--env", "development")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Regexp(t, regexp.MustCompile(`(?m)^telemetry\.otlp\.shutdown_timeout_seconds\s+2\s+\S+base/telemetry\.toml$`), res.stdout)
	require.Regexp(t, regexp.MustCompile(`(?m)^telemetry\.enabled\s+true\s+env OTEL_EXPORTER_OTLP_ENDPOINT$`), res.stdout)
	require.Regexp(t, regexp.MustCompile(`(?m)^telemetry\.metrics\.exporter\s+none\s+env OTEL_METRICS_EXPORTER$`), res.stdout)

	// The test environment keeps export off whatever the shell says.
	res = runConfigShow(t, "--env", "test", "--output", "json")
	require.Equal(t, exitOK, res.code, res.stderr)
	var out struct {
		Sources []struct{ Key, Value, From string }
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out))
	for _, s := range out.Sources {
		if s.Key == "telemetry.enabled" {
			require.Equal(t, "false", s.Value)
			require.Contains(t, s.From, "environments/test/telemetry.toml")
		}
	}

	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	res = runConfigShow(t)
	require.Equal(t, exitUsage, res.code)
	require.Contains(t, res.stderr, `env OTEL_TRACES_EXPORTER: "zipkin" is not one of otlp, console, none`)
}
