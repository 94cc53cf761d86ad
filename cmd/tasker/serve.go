package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/ui"
)

// httpServer serves the API on addr until ctx is done.
type httpServer struct {
	srv    *http.Server
	ln     net.Listener
	scheme string
	done   chan error
}

// listen opens addr, or fails with a usage error naming --listen.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError("--listen %s: %v", addr, err)
	}
	return ln, nil
}

func startHTTP(addr string, backend api.Backend, extra map[string]http.Handler, traces http.Handler, logger *slog.Logger, wrap func(http.Handler) http.Handler, cfg config.API) (*httpServer, error) {
	ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	s, err := serveHTTP(ln, backend, extra, traces, logger, wrap, cfg)
	if err != nil {
		_ = ln.Close()
	}
	return s, err
}

// serveHTTP serves the API (when backend is set; traces answers its
// GET /v1/traces/{trace_id}) and extra on ln, behind the
// token check and with the timeouts and TLS of cfg. The timeouts are this
// program's: the public runtime's APIHandler is only a handler, and a
// program mounting it sets its own server's.
func serveHTTP(ln net.Listener, backend api.Backend, extra map[string]http.Handler, traces http.Handler, logger *slog.Logger, wrap func(http.Handler) http.Handler, cfg config.API) (*httpServer, error) {
	auth, err := api.NewAuth(api.AuthConfig(cfg.Auth), ln.Addr().String())
	if errors.Is(err, api.ErrNoToken) {
		return nil, usageError("api.auth: %v: %s is not a loopback address, so set %s (or api.auth.token_sha256), "+
			"or %s=off (api.auth.mode) on a network nobody else reaches", err, ln.Addr(), config.EnvAPITokens, config.EnvAPIAuth)
	}
	if err != nil {
		return nil, usageError("%v", err)
	}
	auth.Open(ui.PublicPrefix) // the console's files; its reads carry the user's token
	var h http.Handler
	if backend != nil {
		if h, err = api.NewHandler(api.Config{Backend: backend, Logger: logger, Extra: extra, Traces: traces}); err != nil {
			return nil, err
		}
	} else {
		mux := http.NewServeMux()
		for pattern, eh := range extra {
			mux.Handle(pattern, eh)
		}
		h = mux
	}
	if wrap != nil {
		h = wrap(h)
	}
	s := &httpServer{
		srv: &http.Server{
			Handler:           auth.Wrap(h),
			ReadHeaderTimeout: time.Duration(cfg.Timeouts.ReadHeader),
			ReadTimeout:       time.Duration(cfg.Timeouts.Read),
			WriteTimeout:      time.Duration(cfg.Timeouts.Write),
			IdleTimeout:       time.Duration(cfg.Timeouts.Idle),
			MaxHeaderBytes:    cfg.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:     ln,
		scheme: "http",
		done:   make(chan error, 1),
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, usageError("api.tls: loading %s and %s: %v", cfg.TLS.CertFile, cfg.TLS.KeyFile, err)
		}
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.scheme = "https"
	}
	go func() {
		var err error
		if s.scheme == "https" {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

func (s *httpServer) URL() string { return s.scheme + "://" + s.ln.Addr().String() }

func (s *httpServer) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping http server: %w", err)
	}
	return <-s.done
}
