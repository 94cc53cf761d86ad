package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/taskerhq/tasker/internal/api/apitest"
	"github.com/taskerhq/tasker/internal/config"
)

// serveTest serves the fake backend as `tasker server` does, with cfg, on a
// loopback port.
func serveTest(t *testing.T, cfg config.API) (*httpServer, *apitest.Backend) {
	t.Helper()
	backend := apitest.NewBackend(apitest.Template("billing", "invoice", "1.0.0", "fetch", "charge"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := serveHTTP(ln, backend, nil, nil, slog.New(slog.DiscardHandler), nil, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Shutdown()) })
	return srv, backend
}

func TestCLISendsToken(t *testing.T) {
	t.Parallel()
	cfg := config.Default().API
	cfg.Auth.Mode = config.AuthRequired
	cfg.Auth.TokenSHA256 = []string{config.TokenDigest("cli-token")}
	srv, backend := serveTest(t, cfg)

	res := runCLI(t, map[string]string{"TASKER_API_URL": srv.URL()}, "task", "create", "--template", "billing/invoice")
	require.NotEqual(t, exitOK, res.code)
	require.Contains(t, res.stderr, "error: unauthorized: this API needs a bearer token")
	require.Empty(t, backend.CreateRequests())

	res = runCLI(t, map[string]string{"TASKER_API_URL": srv.URL(), "TASKER_API_TOKEN": "cli-token"},
		"task", "create", "--template", "billing/invoice")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Len(t, backend.CreateRequests(), 1)
}

func TestServerRefusesNonLoopbackWithoutToken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = serveHTTP(ln, apitest.NewBackend(), nil, nil, slog.New(slog.DiscardHandler), nil, config.Default().API)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, exitUsage, ee.code)
	require.ErrorContains(t, err, "TASKER_API_TOKENS")
}

// waitClosed reads from conn until the server ends the connection (EOF,
// reset, or an answer), failing after deadline.
func waitClosed(t *testing.T, conn net.Conn, deadline time.Duration) string {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(deadline)))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server still holds the connection after %s", deadline)
	}
	return string(b)
}

// A client trickling its headers or its body does not hold a connection for
// as long as it likes.
func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	cfg := config.Default().API
	cfg.Timeouts.ReadHeader = config.Duration(300 * time.Millisecond)
	cfg.Timeouts.Read = config.Duration(time.Second)
	srv, _ := serveTest(t, cfg)
	addr := srv.ln.Addr().String()

	t.Run("header", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\n")
		require.NoError(t, err)
		waitClosed(t, conn, 30*time.Second)
	})
	t.Run("body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		require.NoError(t, err)
		answer := waitClosed(t, conn, 30*time.Second)
		// The body read fails, so the request is not created.
		require.NotContains(t, answer, "201 Created")
	})
	t.Run("max header bytes", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		big := make([]byte, 2*cfg.MaxHeaderBytes)
		for i := range big {
			big[i] = 'a'
		}
		_, _ = io.WriteString(conn, "GET /v1/templates HTTP/1.1\r\nHost: x\r\nX-Big: "+string(big)+"\r\n\r\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		require.NoError(t, err)
		require.Contains(t, line, "431")
	})
}

func TestServerTLS(t *testing.T) {
	t.Parallel()
	openssl, err := exec.LookPath("openssl")
	require.NoError(t, err, "openssl makes the test certificate")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	out, err := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1").CombinedOutput()
	require.NoError(t, err, string(out))
	cfg := config.Default().API
	cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
	srv, _ := serveTest(t, cfg)
	require.Regexp(t, `^https://`, srv.URL())

	pem, err := os.ReadFile(cert)
	require.NoError(t, err)
	pool := x509Pool(t, pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(srv.URL() + "/health/live")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Plain HTTP to the TLS port is not served.
	resp, err = http.Get("http://" + srv.ln.Addr().String() + "/health/live")
	if err == nil {
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	}
}

func x509Pool(t *testing.T, pem []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return pool
}

// A long-lived answer (long poll, event stream) outlives the server's write
// timeout only by extending its own deadline, which must reach the
// connection through every wrapper: the API's recorder, the token check
// and otelhttp.
func TestLongAnswersExtendTheWriteDeadline(t *testing.T) {
	t.Parallel()
	cfg := config.Default().API
	cfg.Timeouts.Write = config.Duration(300 * time.Millisecond)
	hold := func(extend bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if extend {
				if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
					t.Errorf("extending the write deadline: %v", err) // not FailNow: this is the server's goroutine
				}
			}
			// Past the server's write timeout, as a long poll would be.
			<-time.After(time.Second)
			_, _ = io.WriteString(w, "done")
		}
	}
	backend := apitest.NewBackend()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	wrap := func(h http.Handler) http.Handler { return otelhttp.NewHandler(h, "test") }
	srv, err := serveHTTP(ln, backend, map[string]http.Handler{"GET /extended": hold(true), "GET /plain": hold(false)}, nil,
		slog.New(slog.DiscardHandler), wrap, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Shutdown()) })

	resp, err := http.Get(srv.URL() + "/extended")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "done", string(body))

	// Without extending, the server's timeout ends it.
	resp, err = http.Get(srv.URL() + "/plain")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	require.Error(t, err)
}
