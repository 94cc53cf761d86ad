package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/config"
)

func authConfig(mode string) api.AuthConfig {
	a := api.AuthConfig(config.Default().API.Auth)
	a.Mode = mode
	a.TokenSHA256 = []string{config.TokenDigest("new-token"), config.TokenDigest("old-token")}
	a.ReadTokenSHA256 = []string{config.TokenDigest("read-token")}
	return a
}

func authed(t *testing.T, cfg api.AuthConfig, addr string) http.Handler {
	t.Helper()
	a, err := api.NewAuth(cfg, addr)
	require.NoError(t, err)
	return a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
}

func call(h http.Handler, method, path, authorization string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAuth(t *testing.T) {
	t.Parallel()
	h := authed(t, authConfig(api.AuthAuto), "10.0.0.5:8080")
	for _, c := range []struct {
		name, method, path, authorization string
		status                            int
		challenge                         string
	}{
		{"no token is 401 with a challenge", "GET", "/v1/templates", "", 401, `Bearer realm="tasker"`},
		{"wrong token is 401 invalid_token", "GET", "/v1/templates", "Bearer nope", 401, `Bearer realm="tasker", error="invalid_token"`},
		{"another scheme is 401 invalid_request", "GET", "/v1/templates", "Basic dXNlcjpwYXNz", 401, `Bearer realm="tasker", error="invalid_request"`},
		{"empty bearer is 401 invalid_request", "GET", "/v1/templates", "Bearer ", 401, `Bearer realm="tasker", error="invalid_request"`},
		{"new token passes", "POST", "/v1/tasks", "Bearer new-token", 204, ""},
		{"old token still passes during rotation", "POST", "/v1/tasks", "Bearer old-token", 204, ""},
		{"scheme is case-insensitive", "GET", "/v1/templates", "bearer new-token", 204, ""},
		{"read token reads", "GET", "/v1/tasks/x", "Bearer read-token", 204, ""},
		{"read token may not write: 403", "POST", "/v1/tasks", "Bearer read-token", 403, `Bearer realm="tasker", error="insufficient_scope"`},
		{"metrics protected by default", "GET", "/metrics", "", 401, `Bearer realm="tasker"`},
		{"health open by default", "GET", "/health", "", 204, ""},
		{"readiness open by default", "GET", "/health/ready", "", 204, ""},
		{"a lookalike path is not health", "GET", "/healthz", "", 401, `Bearer realm="tasker"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := call(h, c.method, c.path, c.authorization)
			require.Equal(t, c.status, rec.Code, rec.Body.String())
			require.Equal(t, c.challenge, rec.Header().Get("WWW-Authenticate"))
			if c.status >= 400 {
				require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
				require.Contains(t, rec.Body.String(), `"code":`)
			}
		})
	}
}

func TestAuthOptionalOnLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:8080"} {
		h := authed(t, authConfig(api.AuthAuto), addr)
		require.Equal(t, 204, call(h, "POST", "/v1/tasks", "").Code, addr)
		// A token that is presented is still checked.
		require.Equal(t, 401, call(h, "POST", "/v1/tasks", "Bearer nope").Code, addr)
		require.Equal(t, 403, call(h, "POST", "/v1/tasks", "Bearer read-token").Code, addr)
	}
	// Required regardless of the address.
	h := authed(t, authConfig(api.AuthRequired), "127.0.0.1:8080")
	require.Equal(t, 401, call(h, "GET", "/v1/templates", "").Code)
}

func TestAuthConfiguration(t *testing.T) {
	t.Parallel()
	t.Run("non-loopback without tokens is refused", func(t *testing.T) {
		cfg := api.AuthConfig(config.Default().API.Auth)
		for _, addr := range []string{"0.0.0.0:8080", "[::]:8080", "10.0.0.5:8080", ":8080"} {
			_, err := api.NewAuth(cfg, addr)
			require.ErrorIs(t, err, api.ErrNoToken, addr)
		}
	})
	t.Run("off", func(t *testing.T) {
		a, err := api.NewAuth(api.AuthConfig{Mode: api.AuthOff}, "0.0.0.0:8080")
		require.NoError(t, err)
		require.Nil(t, a)
		h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		require.Equal(t, 204, call(h, "POST", "/v1/tasks", "").Code)
	})
	t.Run("health and metrics separately", func(t *testing.T) {
		cfg := authConfig(api.AuthRequired)
		cfg.Health, cfg.Metrics = true, false
		h := authed(t, cfg, "10.0.0.5:8080")
		require.Equal(t, 401, call(h, "GET", "/health/live", "").Code)
		require.Equal(t, 204, call(h, "GET", "/health/live", "Bearer read-token").Code)
		require.Equal(t, 204, call(h, "GET", "/metrics", "").Code)
	})
}
