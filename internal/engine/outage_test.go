package engine_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/orchestration"
)

// With its database gone, the real API answers 503 with Retry-After on every
// route that needs it, never 500, and neither the answers nor /health carry
// the database's address or user.
func TestDatabaseOutageIs503(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A port nobody listens on: bound, noted, released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	require.NoError(t, l.Close())
	pool, err := pgxpool.New(ctx, "postgres://secretuser:secretpw@127.0.0.1:"+port+"/secretdb?connect_timeout=2")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	svc, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Logger: testLogger(t)}})
	require.NoError(t, err)
	h, err := api.NewHandler(api.Config{Backend: api.NewStore(pool, svc, nil), Logger: testLogger(t)})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/tasks", `{"namespace":"linear_workflow","name":"mathematical_sequence","context":{"even_number":2}}`},
		{http.MethodGet, "/v1/tasks/" + uuid.NewString(), ""},
		{http.MethodGet, "/v1/tasks/" + uuid.NewString() + "/workflow_steps", ""},
		{http.MethodGet, "/v1/templates", ""},
		{http.MethodGet, "/health", ""},
		{http.MethodGet, "/health/ready", ""},
	} {
		req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s %s: %s", c.method, c.path, body)
		require.Equal(t, strconv.Itoa(api.RetryAfterSeconds), resp.Header.Get("Retry-After"), c.path)
		for _, secret := range []string{"127.0.0.1", port, "secretuser", "secretpw", "secretdb"} {
			require.NotContains(t, string(body), secret, c.path)
		}
	}
	resp, err := http.Get(srv.URL + "/health/live")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "liveness does not depend on the database")
}
