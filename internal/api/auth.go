package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/taskerhq/tasker/client"
)

// Codes of authentication failures (client.APIError.Code).
const (
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
)

const authRealm = "tasker"

// Auth modes (AuthConfig.Mode); the same words as the api.auth.mode key.
const (
	// AuthAuto requires a token when the server listens on a non-loopback
	// address; on loopback a request without one is let through (a token
	// that is presented is still checked).
	AuthAuto = "auto"
	// AuthRequired requires a token on every protected route.
	AuthRequired = "required"
	// AuthOff checks nothing.
	AuthOff = "off"
)

// AuthConfig configures NewAuth. It has the fields of the [api.auth]
// configuration section, so a loaded section converts to it directly.
type AuthConfig struct {
	Mode string
	// TokenSHA256 and ReadTokenSHA256 are hex SHA-256 digests of the
	// full-access and the read-only (GET, HEAD) tokens.
	TokenSHA256     []string
	ReadTokenSHA256 []string
	// Metrics and Health protect /metrics and /health* too.
	Metrics bool
	Health  bool
}

// ErrNoToken is NewAuth's error for a server that must require a token but
// has none configured.
var ErrNoToken = errors.New("the API needs a token but none is configured")

// Auth checks bearer tokens (RFC 6750) in front of a handler:
//
//   - no token where one is required, or a token that is not valid (wrong,
//     malformed, another scheme): 401 with WWW-Authenticate, per RFC 9110
//     §15.5.2 — the client has to authenticate (again);
//   - a valid read-only token on a write: 403 (error="insufficient_scope"):
//     authenticated, but not allowed, and another try with the same token
//     will not help.
//
// Tokens are compared as SHA-256 digests, each with subtle.ConstantTimeCompare
// and always against every configured digest, so the time taken says nothing
// about how much of a token matched or which one it was.
type Auth struct {
	full, read [][sha256.Size]byte
	required   bool
	open       map[string]bool // path prefixes served without a token
}

// NewAuth builds the check for a server listening on addr; nil (and no error)
// when cfg.Mode is off. Mode auto requires a token unless addr is loopback;
// a server that would require a token but has none configured is refused,
// naming what to set.
func NewAuth(cfg AuthConfig, addr string) (*Auth, error) {
	if cfg.Mode == AuthOff {
		return nil, nil
	}
	a := &Auth{open: map[string]bool{}}
	for _, l := range []struct {
		in  []string
		out *[][sha256.Size]byte
	}{{cfg.TokenSHA256, &a.full}, {cfg.ReadTokenSHA256, &a.read}} {
		for i, d := range l.in {
			b, err := hex.DecodeString(d)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("api.auth: token digest %d is not a hex SHA-256", i+1)
			}
			*l.out = append(*l.out, [sha256.Size]byte(b))
		}
	}
	switch cfg.Mode {
	case AuthRequired:
		a.required = true
	case AuthAuto, "":
		a.required = !loopback(addr)
	default:
		return nil, fmt.Errorf("api.auth: mode %q is not one of %s, %s, %s", cfg.Mode, AuthAuto, AuthRequired, AuthOff)
	}
	if a.required && len(a.full)+len(a.read) == 0 {
		return nil, fmt.Errorf("listening on %s: %w", addr, ErrNoToken)
	}
	if !cfg.Health {
		a.open["/health"] = true
	}
	if !cfg.Metrics {
		a.open["/metrics"] = true
	}
	return a, nil
}

// loopback reports whether addr (host:port) listens only on a loopback
// interface. An empty host or 0.0.0.0 listens everywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Open serves the paths under prefix without a token. It is for files that
// hold no data, such as the web console's, which a browser fetches without
// an Authorization header. Call it before Wrap serves; a nil Auth ignores it.
func (a *Auth) Open(prefix string) {
	if a != nil {
		a.open[prefix] = true
	}
}

// Wrap returns h behind the token check; a nil Auth returns h.
func (a *Auth) Wrap(h http.Handler) http.Handler {
	if a == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.isOpen(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		header := r.Header.Get("Authorization")
		if header == "" {
			if a.required {
				deny(w, http.StatusUnauthorized, `Bearer realm="`+authRealm+`"`, CodeUnauthorized,
					"this API needs a bearer token (Authorization: Bearer TOKEN)")
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		scheme, token, ok := strings.Cut(header, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			deny(w, http.StatusUnauthorized, `Bearer realm="`+authRealm+`", error="invalid_request"`, CodeUnauthorized,
				"the Authorization header must be: Bearer TOKEN")
			return
		}
		sum := sha256.Sum256([]byte(token))
		full, read := matches(a.full, sum), matches(a.read, sum)
		switch {
		case full:
		case read && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		case read:
			deny(w, http.StatusForbidden, `Bearer realm="`+authRealm+`", error="insufficient_scope"`, CodeForbidden,
				"this token may only read (GET, HEAD)")
			return
		default:
			deny(w, http.StatusUnauthorized, `Bearer realm="`+authRealm+`", error="invalid_token"`, CodeUnauthorized,
				"the bearer token is not valid")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *Auth) isOpen(path string) bool {
	for prefix := range a.open {
		if path == prefix || strings.HasPrefix(path, prefix+"/") {
			return true
		}
	}
	return false
}

// matches compares sum with every digest, without stopping at a match.
func matches(digests [][sha256.Size]byte, sum [sha256.Size]byte) bool {
	found := 0
	for i := range digests {
		found |= subtle.ConstantTimeCompare(digests[i][:], sum[:])
	}
	return found == 1
}

func deny(w http.ResponseWriter, status int, challenge, code, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	body, _ := json.Marshal(client.ErrorBody{Error: &client.APIError{Code: code, Message: msg}}) // strings always encode
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
