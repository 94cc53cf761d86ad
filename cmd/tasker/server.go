package main

import (
	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
)

func newServerCmd(getenv func(string) string) *cobra.Command {
	var f dbFlags
	var listen, logLevel string
	var templates []string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the orchestration server: REST API, initializer, result processor, finalizer, pollers",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.require(); err != nil {
				return err
			}
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pool, err := openDB(ctx, f.URL, f.MaxConns)
			if err != nil {
				return err
			}
			defer pool.Close()
			if len(templates) > 0 {
				tpls, err := loadTemplates(templates, nil)
				if err != nil {
					return err
				}
				if err := registerTemplates(ctx, pool, tpls); err != nil {
					return err
				}
			}
			e, err := engine.Start(ctx, engine.Config{Pool: pool, Logger: logger, Orchestration: &orchestration.Config{}})
			if err != nil {
				return err
			}
			srv, err := startHTTP(listen, e.Orchestrator.Backend(), nil, logger)
			if err != nil {
				_ = e.Stop()
				return err
			}
			logger.Info("tasker server listening", "url", srv.URL(), "processor_uuid", e.Orchestrator.ProcessorUUID())
			<-ctx.Done()
			logger.Info("shutting down")
			herr := srv.Shutdown()
			if err := e.Stop(); err != nil {
				return err
			}
			return herr
		},
	}
	f.bind(cmd, getenv, true)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the REST API")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringSliceVar(&templates, "templates", nil, "directories of task template YAML files to register")
	return cmd
}
