package main

import (
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/client"
)

// opFlags are the flags every operator action takes.
type opFlags struct {
	reason string
	actor  string
}

func (f *opFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.reason, "reason", "", "why, recorded in the task's history")
	cmd.Flags().StringVar(&f.actor, "actor", os.Getenv("USER"), "who, recorded in the task's history (default $USER)")
}

func newTaskCancelCmd(g *globalFlags) *cobra.Command {
	var f opFlags
	var children bool
	cmd := &cobra.Command{
		Use:   "cancel TASK_UUID [--reason TEXT] [--children]",
		Short: "Cancel a task that has not finished",
		Long: `Cancel a task: its steps that have not run never will, running ones are asked to stop,
and results that arrive later are ignored. Cancelling a cancelled task changes nothing;
cancelling a finished one fails (exit 1).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			asJSON, c, id, err := taskArgs(g, args[0])
			if err != nil {
				return err
			}
			task, err := c.CancelTask(cmd.Context(), id, client.CancelRequest{Reason: f.reason, Actor: f.actor, Children: children})
			if err != nil {
				return apiCallError(err)
			}
			return printTask(cmd.OutOrStdout(), asJSON, task, true)
		},
	}
	f.bind(cmd)
	cmd.Flags().BoolVar(&children, "children", false, "also cancel the tasks this one started (by parent correlation ID), recursively")
	return cmd
}

func newTaskRetryCmd(g *globalFlags) *cobra.Command {
	var f opFlags
	cmd := &cobra.Command{
		Use:   "retry TASK_UUID [--reason TEXT]",
		Short: "Run a failed task again from its failed steps",
		Long: `Run a task in error again: its failed steps get a fresh budget of attempts and the
task goes on from them; completed steps keep their results.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			asJSON, c, id, err := taskArgs(g, args[0])
			if err != nil {
				return err
			}
			task, err := c.RetryTask(cmd.Context(), id, client.RetryRequest{Reason: f.reason, Actor: f.actor})
			if err != nil {
				return apiCallError(err)
			}
			return printTask(cmd.OutOrStdout(), asJSON, task, true)
		},
	}
	f.bind(cmd)
	return cmd
}

func newTaskResolveCmd(g *globalFlags) *cobra.Command {
	var f opFlags
	var result string
	cmd := &cobra.Command{
		Use:   "resolve TASK_UUID STEP --result JSON [--reason TEXT]",
		Short: "Mark a failed step resolved by hand, with the result it should have produced",
		Long: `Resolve a failed step (named, or by UUID) manually: it takes --result as its result and
the steps depending on it run.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			if result == "" {
				return usageError("--result is required: the JSON value the step produces")
			}
			if !json.Valid([]byte(result)) {
				return usageError("--result must be JSON, got %.40q", result)
			}
			asJSON, c, id, err := taskArgs(g, args[0])
			if err != nil {
				return err
			}
			task, err := c.ResolveStep(cmd.Context(), id, args[1],
				client.ResolveRequest{Result: json.RawMessage(result), Reason: f.reason, Actor: f.actor})
			if err != nil {
				return apiCallError(err)
			}
			return printTask(cmd.OutOrStdout(), asJSON, task, true)
		},
	}
	f.bind(cmd)
	cmd.Flags().StringVar(&result, "result", "", "the step's result, a JSON value (required)")
	return cmd
}
