package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
)

func newServerCmd(getenv func(string) string) *cobra.Command {
	var f dbFlags
	var listen string
	var templates []string
	var withExamples bool
	var logLevel *string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the orchestration server: REST API, initializer, result processor, finalizer, pollers, /metrics",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if err := f.require(); err != nil {
				return err
			}
			ctx := cmd.Context()
			obs, err := setupObservability(ctx, "tasker-orchestration", *logLevel)
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
			work, err := loadWorkload(templates, withExamples)
			if err != nil {
				return err
			}
			if err := work.register(ctx, pool, nil); err != nil {
				return err
			}
			e, err := engine.Start(ctx, engine.Config{Pool: pool,
				Orchestration: orchestrationConfig(obs.cfg.Orchestration),
				Telemetry:     base.Telemetry{Logger: logger, Metrics: obs.metrics, Tracer: obs.tracer}})
			if err != nil {
				return err
			}
			routes, traces, err := obs.apiRoutes()
			if err != nil {
				return errors.Join(err, e.Stop())
			}
			srv, err := startHTTP(listen, e.Backend(), routes, traces, logger, obs.wrapHTTP, obs.cfg.API)
			if err != nil {
				return errors.Join(err, e.Stop())
			}
			logger.Info("tasker server listening", "url", srv.URL(), "processor_uuid", e.Orchestrator.ProcessorUUID(),
				"telemetry_export", obs.prov.Enabled())
			<-ctx.Done()
			logger.Info("shutting down")
			return errors.Join(srv.Shutdown(), e.Stop())
		},
	}
	f.bind(cmd, getenv, true)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the REST API and /metrics")
	logLevel = logLevelFlag(cmd, "")
	cmd.Flags().StringSliceVar(&templates, "templates", nil, "directories of task template YAML files to register")
	cmd.Flags().BoolVar(&withExamples, "examples", false, "register the example templates")
	return cmd
}

// orchestrationConfig is the orchestrator configuration the orchestration.*
// keys set; the rest keeps the orchestrator's defaults.
func orchestrationConfig(c config.Orchestration) *orchestration.Config {
	return &orchestration.Config{
		Retention:        time.Duration(c.Retention),
		PruneInterval:    time.Duration(c.PruneInterval),
		PruneBatch:       c.PruneBatch,
		ScheduleInterval: time.Duration(c.ScheduleInterval),
	}
}
