package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/taskerhq/tasker/internal/api"
)

// httpServer serves the API on addr until ctx is done.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// listen opens addr, or fails with a usage error naming --listen.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError("--listen %s: %v", addr, err)
	}
	return ln, nil
}

func startHTTP(addr string, backend api.Backend, extra map[string]http.Handler, logger *slog.Logger, wrap func(http.Handler) http.Handler) (*httpServer, error) {
	ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	s, err := serveHTTP(ln, backend, extra, logger, wrap)
	if err != nil {
		_ = ln.Close()
	}
	return s, err
}

// serveHTTP serves the API (when backend is set) and extra on ln.
func serveHTTP(ln net.Listener, backend api.Backend, extra map[string]http.Handler, logger *slog.Logger, wrap func(http.Handler) http.Handler) (*httpServer, error) {
	var h http.Handler
	var err error
	if backend != nil {
		if h, err = api.NewHandler(api.Config{Backend: backend, Logger: logger, Extra: extra}); err != nil {
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
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

func (s *httpServer) URL() string { return "http://" + s.ln.Addr().String() }

func (s *httpServer) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping http server: %w", err)
	}
	return <-s.done
}
