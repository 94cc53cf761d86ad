package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/ui"
)

// tasker server serves the web console and its read endpoints next to the
// API, configured from the environment.
func TestServerServesConsole(t *testing.T) {
	// The configuration reads the process environment (so no t.Parallel).
	t.Setenv("TASKER_UI_TRACE_URL_TEMPLATE", "http://jaeger:16686/trace/{trace_id}")
	// With a token required, the console's files are served without one
	// (a browser cannot send it when opening a page) and its reads need it.
	t.Setenv("TASKER_API_AUTH", "required")
	t.Setenv("TASKER_API_TOKENS", "console-secret")
	dbURL := dbtest.NewDatabase(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())

	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd(func(string) string { return "" })
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"server", "--database-url", dbURL, "--listen", addr, "--examples", "--log-level", "error"})
	done := make(chan int, 1)
	go func() { done <- execute(ctx, root) }()
	t.Cleanup(func() {
		cancel()
		require.Equal(t, exitOK, <-done, "stderr:\n%s", errOut.String())
	})

	base := "http://" + addr
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/ui/config.json")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no console on %s: %v\nstderr:\n%s", base, err, errOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var cfg ui.ConsoleConfig
	require.NoError(t, json.Unmarshal(body, &cfg))
	require.Equal(t, "http://jaeger:16686/trace/{trace_id}", cfg.TraceURLTemplate)

	resp, err := http.Get(base + "/ui/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")

	resp, err = http.Get(base + "/v1/queues")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	req, err := http.NewRequest(http.MethodGet, base+"/v1/queues", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer console-secret")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var queues client.QueueList
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&queues))
	resp.Body.Close()
	require.NotEmpty(t, queues.Queues, "the example templates' queues")
}
