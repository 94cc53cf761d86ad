package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/template"
)

// dbFlags are the flags of commands that talk to PostgreSQL directly.
type dbFlags struct {
	URL      string
	MaxConns int32
}

func (f *dbFlags) bind(cmd *cobra.Command, getenv func(string) string, required bool) {
	help := "PostgreSQL URL (env DATABASE_URL)"
	if !required {
		help += "; empty starts an ephemeral PostgreSQL"
	}
	cmd.Flags().StringVar(&f.URL, "database-url", getenv("DATABASE_URL"), help)
	cmd.Flags().Int32Var(&f.MaxConns, "max-conns", 40, "maximum database connections")
}

func (f *dbFlags) require() error {
	if f.URL == "" {
		return usageError("--database-url or DATABASE_URL is required")
	}
	return nil
}

// openDB connects and applies migrations.
func openDB(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	pool, err := db.NewPool(ctx, url, maxConns)
	if err != nil {
		return nil, &exitError{code: exitUnreachable, err: err}
	}
	if err := db.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// newLogger is the text logger of commands that run without the telemetry
// configuration (benchmarks).
func newLogger(level string) (*slog.Logger, error) {
	lv, err := checkLogLevel(level)
	if err != nil {
		return nil, err
	}
	return telemetry.NewLogger(config.Logs{Level: lv, Format: config.FormatText}, os.Stderr, nil), nil
}

// checkLogLevel validates a --log-level value.
func checkLogLevel(level string) (string, error) {
	lv := strings.ToLower(level)
	switch lv {
	case config.LevelTrace, config.LevelDebug, config.LevelInfo, config.LevelWarn, config.LevelError:
		return lv, nil
	}
	return "", usageError("--log-level: %q is not one of trace, debug, info, warn, error", level)
}

// workload is what a process serves: the example templates and handlers when
// asked (--examples) and the templates of --templates directories.
type workload struct {
	templates []*template.Template
	handlers  *handler.Registry
}

func loadWorkload(dirs []string, withExamples bool) (*workload, error) {
	w := &workload{handlers: handler.NewRegistry()}
	if withExamples {
		tpls, err := examples.Templates()
		if err != nil {
			return nil, err
		}
		if err := examples.Register(w.handlers); err != nil {
			return nil, err
		}
		w.templates = tpls
	}
	for _, d := range dirs {
		more, err := template.LoadDir(d)
		if err != nil {
			return nil, usageError("--templates %s: %v", d, err)
		}
		w.templates = append(w.templates, more...)
	}
	return w, nil
}

// register registers the workload's templates. With serve set (a worker's
// namespaces) it first checks that every template of those namespaces has
// its handlers here, and writes nothing when one does not.
func (w *workload) register(ctx context.Context, pool *pgxpool.Pool, serve []string) error {
	if len(serve) > 0 {
		err := templatestore.CheckHandlers(ctx, pool, serve, w.templates, w.handlers.Has)
		if errors.Is(err, templatestore.ErrMissingHandlers) {
			return usageError("%v (this binary runs only the example handlers with --examples; run your own handlers in your own program: see examples/custom-worker)", err)
		}
		if err != nil {
			return err
		}
	}
	err := templatestore.RegisterAll(ctx, pool, queue.NewClient(nil), w.templates)
	if errors.Is(err, templatestore.ErrConflict) {
		return usageError("%v", err)
	}
	return err
}

func (w *workload) namespaces() []string { return template.Namespaces(w.templates) }

func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }

func printf(cmd *cobra.Command, format string, args ...any) {
	_, _ = fmt.Fprintf(cmd.OutOrStdout(), format, args...)
}
