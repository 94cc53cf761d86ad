package main

import (
	"errors"
	"maps"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/worker"
)

func newWorkerCmd(getenv func(string) string) *cobra.Command {
	var f dbFlags
	var namespaces, templates []string
	var withExamples bool
	var concurrency int
	var lease time.Duration
	var listen string
	var logLevel *string
	cmd := &cobra.Command{
		Use:   "worker [--examples] [--templates DIR] [--namespace NS[,NS]]",
		Short: "Run a Go worker for the example handlers (with /metrics and /health)",
		Long: `tasker worker runs the example step handlers (--examples). Your own handlers run in
your own Go program through the tasker package (see examples/custom-worker). The
worker serves the namespaces of its templates unless --namespace says otherwise, and
refuses to start, naming them, when a template of those namespaces has a step whose
handler it does not have.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if err := f.require(); err != nil {
				return err
			}
			work, err := loadWorkload(templates, withExamples)
			if err != nil {
				return err
			}
			if len(namespaces) == 0 {
				namespaces = work.namespaces()
			}
			if len(namespaces) == 0 {
				return usageError("nothing to serve: give --examples, --templates DIR or --namespace")
			}
			ctx := cmd.Context()
			obs, err := setupObservability(ctx, "tasker-worker", *logLevel)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, obs.shutdown()) }()
			logger := obs.logger
			pool, err := openDB(ctx, f.URL, f.MaxConns)
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := work.register(ctx, pool, namespaces); err != nil {
				return err
			}
			// The initializer is only used to create child tasks for handlers.
			init, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Logger: logger, Tracer: obs.tracer, Metrics: obs.metrics}})
			if err != nil {
				return err
			}
			e, err := engine.Start(ctx, engine.Config{Pool: pool, Worker: &worker.Config{
				Namespaces: namespaces, Concurrency: concurrency, Lease: lease,
				Dispatcher: worker.RegistryDispatcher{Registry: work.handlers}, Submitter: init,
			}, Telemetry: base.Telemetry{Logger: logger, Metrics: obs.metrics, Tracer: obs.tracer}})
			if errors.Is(err, worker.ErrUnknownNamespace) {
				return usageError("%v", err)
			}
			if err != nil {
				return err
			}
			routes := obs.extraRoutes()
			maps.Copy(routes, api.Health{Ping: pool.Ping, Logger: logger}.Routes())
			srv, err := startHTTP(listen, nil, routes, nil, logger, nil, obs.cfg.API)
			if err != nil {
				return errors.Join(err, e.Stop())
			}
			logger.Info("tasker worker running", "worker_id", e.Worker.ID(), "namespaces", namespaces, "metrics", srv.URL()+"/metrics")
			<-ctx.Done()
			logger.Info("shutting down")
			return errors.Join(srv.Shutdown(), e.Stop())
		},
	}
	f.bind(cmd, getenv, true)
	cmd.Flags().StringSliceVar(&namespaces, "namespace", nil, "namespaces to serve (comma-separated or repeated)")
	cmd.Flags().StringSliceVar(&templates, "templates", nil, "directories of task template YAML files to register")
	cmd.Flags().BoolVar(&withExamples, "examples", false, "register the example templates and run their handlers")
	logLevel = logLevelFlag(cmd, "")
	cmd.Flags().IntVar(&concurrency, "concurrency", 10, "handlers run at once")
	cmd.Flags().DurationVar(&lease, "lease", 10*time.Second, "step lease: a crashed worker's steps are retried this long after its last heartbeat")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9091", "address of /metrics and /health")
	return cmd
}
