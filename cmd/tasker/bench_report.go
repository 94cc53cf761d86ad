package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
)

func newBenchReportCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var gen genFlags
	var cfg bench.SuiteConfig
	var scales, outDir, from, jsonPath, logLevel string
	cmd := &cobra.Command{
		Use:   "report --out DIR [--from results.json] [--scales …]",
		Short: "Run the benchmark suite (sql, explain, critical paths) and write a Markdown report with SVG charts",
		Long: `tasker bench report runs tasker bench sql at --scales, tasker bench explain on the
dataset that leaves (its largest scale), and tasker bench critical-paths in a database
of its own, then writes into --out:

  report.md               tables: SQL latency per function and scale with growth ratios
                          and goals, contention, datasets, plan findings, critical paths
  sql-p50.svg, sql-p99.svg  latency vs dataset size per function
  critical-paths-cdf.svg  the critical paths' distributions
  results.json            every result (plans included)

With --from it reads a results.json written before and only rewrites the report
and charts. The run at the default scales (up to 50,000 tasks) takes a few
minutes. The report is written whether or not the goals are met. With
--database-url, give it an empty database: the sql benchmark builds its dataset
there, and the critical paths create (and drop) a database next to it, which
needs CREATEDB.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			errOut := cmd.ErrOrStderr()
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			if outDir == "" {
				return usageError("--out is required; run '%s --help' for usage", cmd.CommandPath())
			}
			var res *bench.SuiteResult
			if from != "" {
				if res, err = bench.ReadSuite(from); err != nil {
					return usageError("--from: %v", err)
				}
			} else {
				if cfg.SQL.Scales, err = parseScales(scales); err != nil {
					return err
				}
				switch {
				case cfg.SQL.Samples < 1:
					return usageError("--samples must be ≥ 1, got %d", cfg.SQL.Samples)
				case cfg.Paths.Samples < 1:
					return usageError("--path-samples must be ≥ 1, got %d", cfg.Paths.Samples)
				case cfg.SQL.ContentionDuration < 0:
					return usageError("--contention-duration must be ≥ 0, got %s", cfg.SQL.ContentionDuration)
				}
				if cfg.SQL.Dataset, err = gen.config(); err != nil {
					return err
				}
				url, stop, err := benchDatabase(ctx, db, errOut, logger)
				if err != nil {
					return err
				}
				defer func() {
					if serr := stop(); serr != nil && err == nil {
						err = serr
					}
				}()
				cfg.DatabaseURL = url
				cfg.SQL.Logger, cfg.Explain.Logger, cfg.Paths.Logger, cfg.SQL.Dataset.Logger = logger, logger, logger, logger
				cfg.Progress = newProgressBar(errOut).Report
				if res, err = bench.Suite(ctx, cfg); err != nil {
					return err
				}
			}
			files, err := bench.WriteReport(outDir, res, from == "")
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(errOut)
			if res.SQL != nil {
				printSQL(out, res.SQL)
				fmt.Fprintln(out)
			}
			if res.Paths != nil {
				printPaths(out, res.Paths)
				fmt.Fprintln(out)
			}
			if res.Explain != nil {
				fmt.Fprintf(out, "explain: %d findings, %d sequential scans of large tables\n", len(res.Explain.Findings), len(res.Explain.SeqScans()))
			}
			for _, f := range files {
				fmt.Fprintf(errOut, "wrote %s\n", f)
			}
			if jsonPath != "" {
				return writeJSONFile(jsonPath, res, errOut)
			}
			return nil
		},
	}
	db.bind(cmd, getenv, false)
	gen.bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&outDir, "out", "", "directory to write the report into (required)")
	fl.StringVar(&from, "from", "", "results.json of an earlier run: rewrite its report instead of running the suite")
	fl.StringVar(&scales, "scales", scalesString(bench.DefaultScales), "dataset sizes in tasks, increasing")
	fl.IntVar(&cfg.SQL.Samples, "samples", 500, "timed calls per SQL function and scale")
	fl.IntVar(&cfg.Paths.Samples, "path-samples", 200, "samples per critical path")
	fl.DurationVar(&cfg.SQL.ContentionDuration, "contention-duration", 5*time.Second, "how long each contention mode runs")
	fl.StringVar(&jsonPath, "json", "", "also write the results as JSON to this file (as results.json in --out)")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}
