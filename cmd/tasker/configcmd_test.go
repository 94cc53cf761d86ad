package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/orchestration"
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

// The orchestration keys are listed with their defaults, a variable sets
// one, and the server's orchestrator gets what they say.
func TestConfigShowOrchestration(t *testing.T) {
	t.Setenv("TASKER_ORCHESTRATION_PRUNE_BATCH", "100")
	res := runConfigShow(t)
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Regexp(t, regexp.MustCompile(`(?m)^orchestration\.retention_seconds\s+604800\s+\S+base/orchestration\.toml$`), res.stdout)
	require.Regexp(t, regexp.MustCompile(`(?m)^orchestration\.prune_interval_seconds\s+60\s+\S+base/orchestration\.toml$`), res.stdout)
	require.Regexp(t, regexp.MustCompile(`(?m)^orchestration\.schedule_interval_seconds\s+1\s+\S+base/orchestration\.toml$`), res.stdout)
	require.Regexp(t, regexp.MustCompile(`(?m)^orchestration\.prune_batch\s+100\s+env TASKER_ORCHESTRATION_PRUNE_BATCH$`), res.stdout)

	t.Setenv("TASKER_ORCHESTRATION_RETENTION_SECONDS", "0")
	res = runConfigShow(t)
	require.Equal(t, exitUsage, res.code)
	require.Contains(t, res.stderr, "env TASKER_ORCHESTRATION_RETENTION_SECONDS: orchestration.retention_seconds: 0 would delete")
}

func TestOrchestrationConfigFromKeys(t *testing.T) {
	got := orchestrationConfig(config.Orchestration{Retention: config.Duration(-time.Second),
		PruneInterval: config.Duration(5 * time.Second), PruneBatch: 20, ScheduleInterval: config.Duration(250 * time.Millisecond)})
	require.Equal(t, &orchestration.Config{Retention: -time.Second, PruneInterval: 5 * time.Second, PruneBatch: 20,
		ScheduleInterval: 250 * time.Millisecond}, got)
	// The defaults of the keys are the orchestrator's own.
	require.Equal(t, orchestration.DefaultRetention, orchestrationConfig(config.Default().Orchestration).Retention)
}
