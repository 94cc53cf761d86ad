package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/config"
)

// Open lets files that hold no data through without a token, and nothing
// else: not a path that merely starts with the same letters.
func TestAuthOpenPrefix(t *testing.T) {
	a, err := api.NewAuth(api.AuthConfig{Mode: api.AuthRequired, TokenSHA256: []string{config.TokenDigest("secret")}}, "0.0.0.0:8080")
	require.NoError(t, err)
	a.Open("/ui")
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for path, want := range map[string]int{
		"/ui":              http.StatusOK,
		"/ui/":             http.StatusOK,
		"/ui/app.js":       http.StatusOK,
		"/uix":             http.StatusUnauthorized,
		"/v1/queues":       http.StatusUnauthorized,
		"/v1/tasks":        http.StatusUnauthorized,
		"/v1/traces/abcd1": http.StatusUnauthorized,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, want, rec.Code, path)
	}
	var nilAuth *api.Auth
	nilAuth.Open("/ui") // a server without auth has nothing to open
}
