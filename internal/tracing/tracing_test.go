package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/tracing"
)

var call = db.Call{Function: "claim_step", Queue: "worker_ns_queue", Messaging: "receive"}

// At trace level every SQL function call logs its entry and exit.
func TestCallLogAtTraceLevel(t *testing.T) {
	var buf bytes.Buffer
	logger := telemetry.NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText,
		Components: map[string]string{tracing.ComponentSQL: config.LevelTrace}}, &buf, nil)
	tr := tracing.Noop().WithCallLog(logger)
	_, done := tr.StartCall(tracing.Suppress(context.Background()), call)
	done(errors.New("boom"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2, buf.String())
	require.Contains(t, lines[0], `level=TRACE msg="sql call" operation=claim_step queue=worker_ns_queue phase=enter component=sql`)
	require.Contains(t, lines[1], `phase=exit error=boom component=sql`)
	require.Contains(t, lines[1], "duration_ms=")
}

// Off (the default), the call log costs nothing: no record, no allocation.
func TestCallLogOffDoesNotAllocate(t *testing.T) {
	var buf bytes.Buffer
	logger := telemetry.NewLogger(config.Logs{Level: config.LevelDebug, Format: config.FormatText}, &buf, nil)
	tr := tracing.Noop().WithCallLog(logger)
	ctx := tracing.Suppress(context.Background())
	allocs := testing.AllocsPerRun(500, func() {
		_, done := tr.StartCall(ctx, call)
		done(nil)
	})
	require.Zero(t, allocs)
	require.Empty(t, buf.String())
}

// BenchmarkCallLogOff measures what the trace-level check adds to every SQL
// function call when trace is off: expect 0 allocs/op.
func BenchmarkCallLogOff(b *testing.B) {
	logger := telemetry.NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText}, &bytes.Buffer{}, nil)
	tr := tracing.Noop().WithCallLog(logger)
	ctx := tracing.Suppress(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		_, done := tr.StartCall(ctx, call)
		done(nil)
	}
}
