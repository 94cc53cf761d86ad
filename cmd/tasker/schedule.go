package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/template"
)

func newScheduleCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Create, list and delete cron schedules that create tasks",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	usageFlagErrors(cmd)
	cmd.AddCommand(newScheduleCreateCmd(g), newScheduleListCmd(g), newScheduleDeleteCmd(g))
	return cmd
}

func newScheduleCreateCmd(g *globalFlags) *cobra.Command {
	var name, cronExpr, tz, tpl, taskCtx string
	cmd := &cobra.Command{
		Use:   "create NAME --cron EXPR --template NS/NAME[@VERSION] [--context JSON] [--time-zone TZ]",
		Short: "Create a task from a template every time a cron expression comes due",
		Long: `Create a schedule: every time the cron expression (standard 5 fields: minute hour
day-of-month month day-of-week, e.g. "*/15 * * * *") comes due in the time zone, one task is
created, exactly once however many orchestrators run.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			name = args[0]
			asJSON, err := g.jsonOutput()
			if err != nil {
				return err
			}
			if cronExpr == "" {
				return usageError("--cron is required")
			}
			if tpl == "" {
				return usageError("--template is required")
			}
			ns, tname, version, err := template.ParseRef(tpl)
			if err != nil {
				return usageError("--template: %w", err)
			}
			if err := checkJSONObject(taskCtx); err != nil {
				return usageError("--context must be a JSON object: %w", err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			sc, err := c.CreateSchedule(cmd.Context(), client.ScheduleRequest{Name: name, Cron: cronExpr, TimeZone: tz,
				Task: client.TaskRequest{Namespace: ns, Name: tname, Version: version, Context: json.RawMessage(taskCtx)}})
			if err != nil {
				return apiCallError(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), sc)
			}
			return printSchedules(cmd, []client.Schedule{*sc})
		},
	}
	cmd.Flags().StringVar(&cronExpr, "cron", "", "cron expression, 5 fields (required)")
	cmd.Flags().StringVar(&tz, "time-zone", "UTC", "IANA time zone the cron expression is read in")
	cmd.Flags().StringVar(&tpl, "template", "", "template to run, NS/NAME or NS/NAME@VERSION (required)")
	cmd.Flags().StringVar(&taskCtx, "context", "{}", "task context, a JSON object")
	return cmd
}

func newScheduleListCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the schedules",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			asJSON, err := g.jsonOutput()
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.ListSchedules(cmd.Context())
			if err != nil {
				return apiCallError(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), client.ScheduleList{Schedules: list})
			}
			return printSchedules(cmd, list)
		},
	}
}

func newScheduleDeleteCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a schedule (tasks it created stay)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			asJSON, err := g.jsonOutput()
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteSchedule(cmd.Context(), args[0]); err != nil {
				return apiCallError(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]string{"deleted": args[0]})
			}
			printf(cmd, "deleted schedule %s\n", args[0])
			return nil
		},
	}
}

func printSchedules(cmd *cobra.Command, list []client.Schedule) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "NAME\tCRON\tTIME_ZONE\tTEMPLATE\tNEXT_RUN_AT")
	for _, s := range list {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\n", s.Name, s.Cron, s.TimeZone, s.Task.Namespace, s.Task.Name, s.NextRunAt.Format(timeLayout))
	}
	return tw.Flush()
}
