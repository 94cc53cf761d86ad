package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/config"
)

// server and worker run the production profile when TASKER_ENV is unset,
// tasker dev the development one; TASKER_ENV overrides both.
func TestDefaultProfiles(t *testing.T) {
	for _, c := range []struct {
		taskerEnv, processDefault, level string
	}{
		{"", "", config.LevelInfo},                // server, worker
		{"", "development", config.LevelDebug},    // dev
		{"test", "development", config.LevelWarn}, // dev under TASKER_ENV=test
		{"development", "", config.LevelDebug},    // server under TASKER_ENV=development
	} {
		t.Setenv("TASKER_ENV", c.taskerEnv)
		// Export stays off whatever the profile says: no collector here.
		t.Setenv("TASKER_TELEMETRY_ENABLED", "false")
		obs, err := setupObservabilityTo(t.Context(), "tasker-test", "", c.processDefault, io.Discard)
		require.NoError(t, err)
		require.Equal(t, c.level, obs.cfg.Telemetry.Logs.Level, "TASKER_ENV=%q, process default %q", c.taskerEnv, c.processDefault)
		require.NoError(t, obs.shutdown())
	}
}
