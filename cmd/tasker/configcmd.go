package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/config"
)

func newConfigCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the effective configuration",
		Args:  usageArgs(cobra.ArbitraryArgs),
		RunE:  groupRunE,
	}
	var dir, env string
	show := &cobra.Command{
		Use:   "show",
		Short: "Print every configuration key, its effective value and where it came from",
		Long: `Configuration is read from config/tasker/base/*.toml, overlaid by
config/tasker/environments/$TASKER_ENV/*.toml (default production; tasker dev: development), overlaid by
TASKER_* environment variables; the standard OTEL_* variables win over all of them.
Without a config/tasker directory in the working directory, the files built into
the binary are used.

Export turns on with OTEL_EXPORTER_OTLP_ENDPOINT (or a per-signal endpoint, or an
OTEL_*_EXPORTER other than none) unless telemetry.enabled = false is set explicitly
or OTEL_SDK_DISABLED=true; the FROM column names what decided.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := g.jsonOutput()
			if err != nil {
				return err
			}
			cfg, sources, err := config.Load(config.LoadOptions{Dir: dir, Env: env})
			if err != nil {
				return usageError("%v", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"config": cfg, "sources": sources})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tVALUE\tFROM")
			for _, s := range sources {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key, s.Value, s.From)
			}
			return tw.Flush()
		},
	}
	show.Flags().StringVar(&dir, "dir", "", "configuration directory (default ./config/tasker, else the built-in files)")
	show.Flags().StringVar(&env, "env", "", "environment (default $TASKER_ENV, else production)")
	cmd.AddCommand(show)
	return cmd
}
