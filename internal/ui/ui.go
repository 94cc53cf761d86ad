package ui

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/config"
)

//go:embed assets
var assets embed.FS

// DefaultJaegerTimeout bounds one proxied Jaeger query when
// Config.JaegerTimeout is zero.
const DefaultJaegerTimeout = 10 * time.Second

// maxTraceBytes caps a proxied trace: a runaway trace must not exhaust the
// server's memory, and the console could not draw more anyway.
const maxTraceBytes = 32 << 20

// Config configures Routes. Zero values mean the documented default.
type Config struct {
	// TraceURLTemplate links a task to its trace in a tracing UI; the
	// console replaces {trace_id}. Empty: the trace ID is shown as text.
	TraceURLTemplate string
	// JaegerQueryURL is a Jaeger query service's base URL. Empty: no
	// waterfall is drawn and the proxy route answers 404.
	JaegerQueryURL string
	// JaegerTimeout bounds one proxied query; zero means DefaultJaegerTimeout.
	JaegerTimeout time.Duration
	// HTTPClient sends proxied queries; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives proxy and read failures; nil means slog.Default().
	Logger *slog.Logger
}

// FromConfig returns the console configuration set in cfg's telemetry.ui keys.
func FromConfig(ui config.UI) Config {
	return Config{TraceURLTemplate: ui.TraceURLTemplate, JaegerQueryURL: ui.JaegerQueryURL}
}

func (c Config) withDefaults() Config {
	c.JaegerTimeout = cmp.Or(c.JaegerTimeout, DefaultJaegerTimeout)
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if c.TraceURLTemplate != "" && !strings.Contains(c.TraceURLTemplate, config.TraceIDPlaceholder) {
		return fmt.Errorf("ui config: TraceURLTemplate %q has no %s placeholder", c.TraceURLTemplate, config.TraceIDPlaceholder)
	}
	if c.JaegerQueryURL != "" {
		u, err := url.Parse(c.JaegerQueryURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("ui config: JaegerQueryURL %q is not an http:// or https:// URL", c.JaegerQueryURL)
		}
	}
	if c.JaegerTimeout < 0 {
		return fmt.Errorf("ui config: JaegerTimeout must not be negative, got %s", c.JaegerTimeout)
	}
	return nil
}

// PublicPrefix is where the console's files are. They hold no data (the
// console reads everything through the API, with the user's token), so a
// server requiring a token serves them without one: a browser cannot send a
// bearer token when it opens a page.
const PublicPrefix = "/ui"

// Console is the web console's handlers.
type Console struct {
	// Routes are the console's files and configuration keyed by
	// http.ServeMux pattern, all under PublicPrefix, to mount beside the REST
	// API (api.Config.Extra).
	Routes map[string]http.Handler
	// Traces answers GET /v1/traces/{trace_id} (api.Config.Traces): a proxy
	// to the Jaeger query service, or 404 naming the key that configures one.
	Traces http.Handler
}

// New returns the console's handlers, or an error naming what is wrong with
// cfg. Its other reads (tasks, queues, workers) are the REST API's.
func New(cfg Config) (*Console, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &handlers{cfg: cfg.withDefaults()}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("ui: reading embedded assets: %w", err)
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(static))
	return &Console{
		Routes: map[string]http.Handler{
			"GET /ui":             http.RedirectHandler("/ui/", http.StatusMovedPermanently),
			"GET /ui/":            securityHeaders(files),
			"GET /ui/config.json": http.HandlerFunc(h.config),
		},
		Traces: http.HandlerFunc(h.jaegerTrace),
	}, nil
}

// securityHeaders keeps the console to its own origin: it loads nothing from
// elsewhere, so a CSP that forbids it costs nothing and stops injected markup
// from reaching out.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		// Assets change with the binary; revalidating is cheap and never stale.
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

type handlers struct {
	cfg Config
}

// ConsoleConfig is the body of GET /ui/config.json.
type ConsoleConfig struct {
	TraceURLTemplate string `json:"trace_url_template,omitempty"`
	// Jaeger is true when GET /v1/traces/{trace_id} proxies a Jaeger query service.
	Jaeger bool `json:"jaeger"`
}

func (h *handlers) config(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ConsoleConfig{TraceURLTemplate: h.cfg.TraceURLTemplate, Jaeger: h.cfg.JaegerQueryURL != ""})
}

// traceIDRE accepts W3C (32 hex digits) and legacy 64-bit (16) trace IDs, so
// nothing but an ID ever reaches the proxied URL.
var traceIDRE = regexp.MustCompile(`^(?:[0-9a-f]{16}|[0-9a-f]{32})$`)

// jaegerTrace proxies Jaeger's GET /api/traces/{id}, passing its answer
// through, so the console reads it from its own origin.
func (h *handlers) jaegerTrace(w http.ResponseWriter, r *http.Request) {
	if h.cfg.JaegerQueryURL == "" {
		writeError(w, &client.APIError{Status: http.StatusNotFound, Code: client.CodeNotFound,
			Message: "no Jaeger query service is configured (telemetry.ui.jaeger_query_url)"})
		return
	}
	id := strings.ToLower(r.PathValue("trace_id"))
	if !traceIDRE.MatchString(id) {
		writeError(w, &client.APIError{Status: http.StatusBadRequest, Code: client.CodeInvalidField, Field: "trace_id",
			Message: fmt.Sprintf("trace_id must be 16 or 32 hex digits, got %q", r.PathValue("trace_id"))})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.JaegerTimeout)
	defer cancel()
	target := strings.TrimRight(h.cfg.JaegerQueryURL, "/") + "/api/traces/" + id
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		h.internal(w, r, "building the Jaeger request", err)
		return
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.cfg.HTTPClient.Do(req)
	if err != nil {
		h.cfg.Logger.WarnContext(r.Context(), "jaeger query failed", "url", target, "error", err)
		writeError(w, &client.APIError{Status: http.StatusBadGateway, Code: "jaeger_unavailable",
			Message: fmt.Sprintf("querying Jaeger at %s: %v", h.cfg.JaegerQueryURL, err)})
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		// Jaeger's errors come in its own shape (and as text/plain): they
		// are answered in the API's, so every error a client sees is one.
		e := &client.APIError{Status: http.StatusBadGateway, Code: "jaeger_error",
			Message: fmt.Sprintf("Jaeger answered %d: %s", resp.StatusCode, jaegerErrorText(resp.Body))}
		if resp.StatusCode == http.StatusNotFound {
			e.Status, e.Code, e.Message = http.StatusNotFound, client.CodeNotFound, "Jaeger has no trace "+id
		}
		writeError(w, e)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, io.LimitReader(resp.Body, maxTraceBytes)); err != nil {
		h.cfg.Logger.WarnContext(r.Context(), "copying jaeger answer failed", "url", target, "error", err)
	}
}

// jaegerErrorText is the message of a Jaeger error answer
// ({"errors":[{"msg"}]}), or the start of its body when it is not one.
func jaegerErrorText(body io.Reader) string {
	raw, _ := io.ReadAll(io.LimitReader(body, 4<<10))
	var je struct {
		Errors []struct {
			Msg string `json:"msg"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &je) == nil && len(je.Errors) > 0 && je.Errors[0].Msg != "" {
		return je.Errors[0].Msg
	}
	if text := strings.TrimSpace(string(raw)); text != "" {
		return text
	}
	return "no message"
}

func (h *handlers) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.cfg.Logger.ErrorContext(r.Context(), "trace proxy failed", "what", what, "error", err)
	writeError(w, &client.APIError{Status: http.StatusInternalServerError, Code: client.CodeInternal, Message: what + " failed"})
}

func writeError(w http.ResponseWriter, e *client.APIError) {
	writeJSON(w, e.Status, client.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
