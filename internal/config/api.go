package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// API configures the HTTP servers of `tasker server` (REST API, /metrics,
// /health) and `tasker worker` (/metrics, /health).
type API struct {
	Auth     Auth         `toml:"auth"`
	TLS      TLS          `toml:"tls"`
	Timeouts HTTPTimeouts `toml:"timeouts"`
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes int `toml:"max_header_bytes"`
}

// Auth modes (the same words as internal/api's).
const (
	// AuthAuto requires a token when the server listens on a non-loopback
	// address and accepts requests without one on loopback (tokens that are
	// configured are still checked when presented).
	AuthAuto = "auto"
	// AuthRequired requires a token on every protected route.
	AuthRequired = "required"
	// AuthOff accepts every request; only for a network nobody else reaches.
	AuthOff = "off"
)

// Auth is bearer-token authentication. Tokens are kept as SHA-256 digests
// (hex), so a configuration file or its backups never hold a usable token;
// several tokens may be valid at once, which is how a token is rotated (add
// the new one, move clients, remove the old one).
type Auth struct {
	Mode string `toml:"mode"`
	// TokenSHA256 are digests of tokens with full access.
	TokenSHA256 []string `toml:"token_sha256"`
	// ReadTokenSHA256 are digests of tokens that may only read (GET, HEAD):
	// a write with one is answered 403.
	ReadTokenSHA256 []string `toml:"read_token_sha256"`
	// Metrics and Health say whether /metrics and /health* need a token too.
	// Probes of a load balancer usually cannot send one; scrapers can.
	Metrics bool `toml:"metrics"`
	Health  bool `toml:"health"`
}

// TLS serves HTTPS when both files are set.
type TLS struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// HTTPTimeouts bound how long a client may hold a connection: a request
// body trickled a byte at a time ends at Read.
type HTTPTimeouts struct {
	ReadHeader Duration `toml:"read_header_seconds"`
	Read       Duration `toml:"read_seconds"`
	Write      Duration `toml:"write_seconds"`
	Idle       Duration `toml:"idle_seconds"`
}

func defaultAPI() API {
	return API{
		Auth: Auth{Mode: AuthAuto, TokenSHA256: []string{}, ReadTokenSHA256: []string{}, Metrics: true, Health: false},
		Timeouts: HTTPTimeouts{
			ReadHeader: Duration(5 * time.Second),
			Read:       Duration(30 * time.Second),
			Write:      Duration(60 * time.Second),
			Idle:       Duration(120 * time.Second),
		},
		MaxHeaderBytes: 64 << 10,
	}
}

// TokenDigest is the hex SHA-256 of a token, as token_sha256 holds it
// (`printf %s TOKEN | sha256sum`).
func TokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// parseTokens splits a comma-separated list of tokens into digests.
func parseTokens(v string) []string {
	var out []string
	for tok := range strings.SplitSeq(v, ",") {
		if tok = strings.TrimSpace(tok); tok != "" {
			out = append(out, TokenDigest(tok))
		}
	}
	return out
}

func (v *validator) api(a API) {
	v.oneOf("api.auth.mode", a.Auth.Mode, AuthAuto, AuthRequired, AuthOff)
	for _, l := range []struct {
		key     string
		digests []string
	}{{"api.auth.token_sha256", a.Auth.TokenSHA256}, {"api.auth.read_token_sha256", a.Auth.ReadTokenSHA256}} {
		for i, d := range l.digests {
			if b, err := hex.DecodeString(d); err != nil || len(b) != sha256.Size {
				// Never echo the value: it may be a token pasted by mistake.
				v.bad(l.key, "entry %d is not a hex SHA-256 digest (64 hex digits; printf %%s TOKEN | sha256sum)", i+1)
			}
		}
	}
	if a.Auth.Mode == AuthRequired && len(a.Auth.TokenSHA256)+len(a.Auth.ReadTokenSHA256) == 0 {
		v.bad("api.auth.mode", "%q needs at least one token (api.auth.token_sha256 or %s)", AuthRequired, EnvAPITokens)
	}
	if (a.TLS.CertFile == "") != (a.TLS.KeyFile == "") {
		v.bad("api.tls.cert_file", "api.tls.cert_file and api.tls.key_file must be set together")
	}
	for key, d := range map[string]Duration{
		"api.timeouts.read_header_seconds": a.Timeouts.ReadHeader, "api.timeouts.read_seconds": a.Timeouts.Read,
		"api.timeouts.write_seconds": a.Timeouts.Write, "api.timeouts.idle_seconds": a.Timeouts.Idle,
	} {
		if d <= 0 {
			v.bad(key, "%s must be greater than 0", d)
		}
	}
	if a.MaxHeaderBytes < 1024 {
		v.bad("api.max_header_bytes", "%d is less than 1024", a.MaxHeaderBytes)
	}
}
