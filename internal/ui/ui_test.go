package ui_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/ui"
)

func serve(t *testing.T, cfg ui.Config) string {
	t.Helper()
	console, err := ui.New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	for p, h := range console.Routes {
		mux.Handle(p, h)
	}
	mux.Handle("GET /v1/traces/{trace_id}", console.Traces)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, body
}

func apiError(t *testing.T, body []byte) *client.APIError {
	t.Helper()
	var e client.ErrorBody
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.NotNil(t, e.Error, string(body))
	return e.Error
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  ui.Config
		want string
	}{
		{ui.Config{TraceURLTemplate: "http://jaeger/trace/"}, "no {trace_id} placeholder"},
		{ui.Config{JaegerQueryURL: "jaeger:16686"}, "is not an http:// or https:// URL"},
		{ui.Config{JaegerTimeout: -time.Second}, "JaegerTimeout must not be negative"},
	} {
		_, err := ui.New(c.cfg)
		require.ErrorContains(t, err, c.want)
	}
}

func TestAssetsAndConfig(t *testing.T) {
	base := serve(t, ui.Config{TraceURLTemplate: "http://jaeger:16686/trace/{trace_id}"})
	status, hdr, _ := get(t, base+"/ui")
	require.Equal(t, http.StatusMovedPermanently, status)
	require.Equal(t, "/ui/", hdr.Get("Location"))

	status, hdr, body := get(t, base+"/ui/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, hdr.Get("Content-Type"), "text/html")
	require.Contains(t, hdr.Get("Content-Security-Policy"), "default-src 'self'")
	require.Contains(t, string(body), `<script type="module" src="app.js">`)
	for _, asset := range []string{"app.js", "api.js", "dom.js", "draw.js", "style.css"} {
		status, _, _ := get(t, base+"/ui/"+asset)
		require.Equal(t, http.StatusOK, status, asset)
	}

	status, _, body = get(t, base+"/ui/config.json")
	require.Equal(t, http.StatusOK, status)
	var cfg ui.ConsoleConfig
	require.NoError(t, json.Unmarshal(body, &cfg))
	require.Equal(t, ui.ConsoleConfig{TraceURLTemplate: "http://jaeger:16686/trace/{trace_id}"}, cfg)
}

// The console works offline: no asset loads anything from another origin.
func TestAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	fsys := os.DirFS("assets")
	require.NoError(t, fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		for _, m := range external.FindAllString(string(data), -1) {
			// The SVG namespace is a name, not a request.
			require.Equal(t, "http://www.w3.org", m, "%s refers to another origin", path)
		}
		return nil
	}))
}

func TestJaegerProxyErrors(t *testing.T) {
	status, _, body := get(t, serve(t, ui.Config{})+"/v1/traces/0af7651916cd43dd8448eb211c80319c")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, apiError(t, body).Message, "telemetry.ui.jaeger_query_url")

	// A port nothing listens on: the proxy answers 502 naming Jaeger.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	base := serve(t, ui.Config{JaegerQueryURL: closed})
	status, _, body = get(t, base+"/v1/traces/not-a-trace")
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "trace_id", apiError(t, body).Field)
	status, _, body = get(t, base+"/v1/traces/0af7651916cd43dd8448eb211c80319c")
	require.Equal(t, http.StatusBadGateway, status)
	require.True(t, strings.HasPrefix(apiError(t, body).Message, "querying Jaeger at "+closed), string(body))
}
