// Command custom-worker is a complete program that runs a workflow of its own
// with Tasker: its templates (templates/*.yaml, embedded), its handlers
// (handlers.go), a worker and an orchestrator, and the REST API, against the
// PostgreSQL database of DATABASE_URL.
//
//	DATABASE_URL=postgres://... go run . --listen 127.0.0.1:8090
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker"
	"github.com/taskerhq/tasker/template"
)

//go:embed templates/*.yaml
var templatesFS embed.FS

func loadTemplates() ([]*template.Template, error) { return template.LoadFS(templatesFS, "templates") }

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address of the REST API")
	concurrency := flag.Int("concurrency", 10, "handlers run at once")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, os.Getenv("DATABASE_URL"), *listen, *concurrency); err != nil {
		logger.Error("custom-worker failed", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, databaseURL, listen string, concurrency int) error {
	if databaseURL == "" {
		return errors.New("DATABASE_URL is required")
	}
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer pool.Close()
	if err := tasker.Migrate(ctx, pool); err != nil {
		return err
	}
	// The application's own table, next to Tasker's schema.
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS order_reports (
		id bigserial PRIMARY KEY, day date NOT NULL, orders int NOT NULL, total_cents bigint NOT NULL,
		task_uuid uuid NOT NULL UNIQUE)`); err != nil {
		return fmt.Errorf("creating order_reports: %w", err)
	}
	tpls, err := loadTemplates()
	if err != nil {
		return err
	}
	c, err := tasker.NewClient(pool, &tasker.Config{
		Templates:     tpls,
		Handlers:      registerHandlers(pool),
		Worker:        &tasker.WorkerConfig{Concurrency: concurrency},
		Orchestration: &tasker.OrchestrationConfig{},
		Logger:        logger,
	})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := c.Stop(sctx); err != nil {
			logger.Error("stopping", "error", err)
		}
	}()
	api, err := c.APIHandler()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	// APIHandler is only a handler: the limits on slow or idle clients are
	// this server's to set.
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("custom-worker running", "api", "http://"+ln.Addr().String(), "templates", len(tpls))
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
