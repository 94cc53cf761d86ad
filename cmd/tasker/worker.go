package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/worker"
)

func newWorkerCmd(getenv func(string) string) *cobra.Command {
	var f dbFlags
	var namespaces, templates []string
	var logLevel string
	var concurrency int
	var lease time.Duration
	cmd := &cobra.Command{
		Use:   "worker --namespace NS[,NS]",
		Short: "Run a Go worker serving the steps of the given namespaces",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.require(); err != nil {
				return err
			}
			if len(namespaces) == 0 {
				return usageError("--namespace is required")
			}
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			reg := handler.NewRegistry()
			examples.Register(reg)
			tpls, err := loadTemplates(templates, reg)
			if err != nil {
				return err
			}
			pool, err := openDB(ctx, f.URL, f.MaxConns)
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := registerTemplates(ctx, pool, tpls); err != nil {
				return err
			}
			// The initializer is only used to create child tasks for handlers.
			init, err := orchestration.New(pool, orchestration.Config{Logger: logger})
			if err != nil {
				return err
			}
			e, err := engine.Start(ctx, engine.Config{Pool: pool, Logger: logger, Worker: &worker.Config{
				Namespaces: namespaces, Concurrency: concurrency, Lease: lease,
				Dispatcher: worker.RegistryDispatcher{Registry: reg}, Submitter: init,
			}})
			if errors.Is(err, worker.ErrUnknownNamespace) {
				return usageError("%v", err)
			}
			if err != nil {
				return err
			}
			logger.Info("tasker worker running", "worker_id", e.Worker.ID(), "namespaces", namespaces)
			<-ctx.Done()
			logger.Info("shutting down")
			return e.Stop()
		},
	}
	f.bind(cmd, getenv, true)
	cmd.Flags().StringSliceVar(&namespaces, "namespace", nil, "namespaces to serve (comma-separated or repeated)")
	cmd.Flags().StringSliceVar(&templates, "templates", nil, "directories of task template YAML files to register")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().IntVar(&concurrency, "concurrency", 10, "handlers run at once")
	cmd.Flags().DurationVar(&lease, "lease", 10*time.Second, "step lease: a crashed worker's steps are retried this long after its last heartbeat")
	return cmd
}
