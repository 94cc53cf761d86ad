// Command tasker is Tasker's single binary: the development stack
// (`tasker dev`), the orchestration server, workers, migrations, the REST
// client commands and the benchmarks.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, newRootCmd(os.Getenv))
	stop()
	os.Exit(code)
}

func newRootCmd(getenv func(string) string) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "tasker",
		Short: "Tasker: a PostgreSQL-native DAG workflow orchestrator",
		Long: `Tasker runs workflows (DAGs of steps) on PostgreSQL: templates define the DAG,
tasks are its runs, workers execute the steps.

Start here:  tasker dev      (everything in one process on an ephemeral PostgreSQL)

Exit codes:
  0  success
  1  failure: a task did not complete, something was not found, or the server
     refused the request in the state things are in (409)
  2  usage: bad flags, arguments or input (the error names the flag or field)
  3  the API or database could not be reached

With -o json, output is JSON on stdout and errors are JSON on stderr:
  {"error": {"code": "...", "field": "...", "message": "...", "exit_code": N}}`,
		Version: version(),
		Args:    usageArgs(cobra.NoArgs),
		RunE:    groupRunE,
	}
	usageFlagErrors(root)
	g.bind(root, getenv)
	root.AddCommand(
		newDevCmd(getenv),
		newServerCmd(getenv),
		newWorkerCmd(getenv),
		newMigrateCmd(getenv),
		newTaskCmd(g),
		newScheduleCmd(g),
		newTemplateCmd(g, getenv),
		newTraceCmd(g),
		newConfigCmd(g),
		newBenchCmd(getenv),
	)
	return root
}
