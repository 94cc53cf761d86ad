package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/template"
)

// timeLayout shows milliseconds: steps of one task are often milliseconds apart.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func newTaskCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Create, find, inspect, cancel, retry and resolve tasks",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	usageFlagErrors(cmd)
	cmd.AddCommand(newTaskCreateCmd(g), newTaskGetCmd(g), newTaskStepsCmd(g), newTaskListCmd(g),
		newTaskCancelCmd(g), newTaskRetryCmd(g), newTaskResolveCmd(g))
	return cmd
}

type taskCreateFlags struct {
	template            string
	context             string
	correlationID       string
	parentCorrelationID string
	wait                bool
	timeout             time.Duration
	file                string
}

func newTaskCreateCmd(g *globalFlags) *cobra.Command {
	var f taskCreateFlags
	cmd := &cobra.Command{
		Use:   "create --template NS/NAME[@VERSION] [--context JSON] | --file TASKS.jsonl",
		Short: "Create a task from a registered template, or many from a file",
		Long: `Create a task from a registered template and print its UUID, correlation ID and state.
With --wait, wait until the task is finished (the server answers when it is: no polling),
print its final state, result and error, and exit 1 unless it completed.

With --file, create the tasks of a JSON-lines file (- for standard input), one task
request per line as POST /v1/tasks takes it, at most 1000, in one batch: all of them or,
when any line is refused, none (each refused line is named).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true // past flag parsing, usage text would bury the error
			if f.file != "" {
				return runTaskCreateFile(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), g, f)
			}
			return runTaskCreate(cmd.Context(), cmd.OutOrStdout(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.template, "template", "", "template to run, NS/NAME or NS/NAME@VERSION (required)")
	fl.StringVar(&f.context, "context", "{}", "task context, a JSON object")
	fl.StringVar(&f.correlationID, "correlation-id", "", "correlation ID (UUID); a new UUIDv7 when omitted")
	fl.StringVar(&f.parentCorrelationID, "parent-correlation-id", "", "correlation ID (UUID) of the parent workflow")
	fl.BoolVar(&f.wait, "wait", false, "wait until the task is finished; exit 1 unless it completed")
	fl.DurationVar(&f.timeout, "timeout", 60*time.Second, "how long --wait waits")
	fl.StringVar(&f.file, "file", "", "create the task requests of this JSON-lines file (- for standard input) in one batch")
	return cmd
}

// buildTaskRequest checks the flags of task create, naming the flag at fault,
// before anything is sent.
func buildTaskRequest(f taskCreateFlags) (client.TaskRequest, error) {
	if f.template == "" {
		return client.TaskRequest{}, usageError("--template is required")
	}
	ns, name, version, err := template.ParseRef(f.template)
	if err != nil {
		return client.TaskRequest{}, usageError("--template: %w", err)
	}
	if err := checkJSONObject(f.context); err != nil {
		return client.TaskRequest{}, usageError("--context must be a JSON object: %w", err)
	}
	req, err := client.NewTaskRequest(ns, name, version, json.RawMessage(f.context))
	if err != nil {
		return client.TaskRequest{}, fmt.Errorf("building task request: %w", err)
	}
	if f.correlationID != "" {
		id, err := parseUUIDFlag("--correlation-id", f.correlationID)
		if err != nil {
			return client.TaskRequest{}, err
		}
		req = req.WithCorrelationID(id)
	}
	if f.parentCorrelationID != "" {
		id, err := parseUUIDFlag("--parent-correlation-id", f.parentCorrelationID)
		if err != nil {
			return client.TaskRequest{}, err
		}
		req = req.WithParentCorrelationID(id)
	}
	if f.wait && f.timeout <= 0 {
		return client.TaskRequest{}, usageError("--timeout must be positive, got %s", f.timeout)
	}
	return req, nil
}

func runTaskCreate(ctx context.Context, out io.Writer, g *globalFlags, f taskCreateFlags) error {
	asJSON, err := g.jsonOutput()
	if err != nil {
		return err
	}
	req, err := buildTaskRequest(f)
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	task, err := c.CreateTask(ctx, req)
	if err != nil {
		return apiCallError(err)
	}
	if !f.wait {
		return printTask(out, asJSON, task, false)
	}

	waitCtx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	final, err := c.WaitTask(waitCtx, task.TaskUUID)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// Report the state as of now, not as of the last poll (a timeout
		// shorter than one poll round trip would otherwise show the state at
		// creation).
		if now, gerr := c.GetTask(ctx, task.TaskUUID); gerr == nil {
			final = now
		}
		if final == nil {
			final = task
		}
		if perr := printTask(out, asJSON, final, true); perr != nil {
			return perr
		}
		return failedError("task %s did not finish within %s (state %s)", final.TaskUUID, f.timeout, final.State)
	}
	if err != nil {
		return apiCallError(err)
	}
	if err := printTask(out, asJSON, final, true); err != nil {
		return err
	}
	if final.State != "complete" {
		return failedError("task %s finished in state %s", final.TaskUUID, final.State)
	}
	return nil
}

func newTaskGetCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get TASK_UUID",
		Short: "Show a task",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			asJSON, c, id, err := taskArgs(g, args[0])
			if err != nil {
				return err
			}
			task, err := c.GetTask(cmd.Context(), id)
			if err != nil {
				return apiCallError(err)
			}
			return printTask(cmd.OutOrStdout(), asJSON, task, true)
		},
	}
}

func newTaskStepsCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "steps TASK_UUID",
		Short: "Show a task's workflow steps and their state transitions",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			asJSON, c, id, err := taskArgs(g, args[0])
			if err != nil {
				return err
			}
			steps, err := c.ListSteps(cmd.Context(), id)
			if err != nil {
				return apiCallError(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), steps)
			}
			return printSteps(cmd.OutOrStdout(), steps)
		},
	}
}

type taskListFlags struct {
	states              []string
	namespace, name     string
	createdAfter        string
	createdBefore       string
	correlationID       string
	parentCorrelationID string
	limit               int
	cursor              string
	all                 bool
}

func newTaskListCmd(g *globalFlags) *cobra.Command {
	var f taskListFlags
	cmd := &cobra.Command{
		Use:   "list [--state S] [--namespace NS] [--name NAME] [--created-after T] [--created-before T] [--correlation-id UUID] [--parent-correlation-id UUID]",
		Short: "List and search tasks, newest first",
		Long: `List the tasks matching every filter given, newest first, one page at a time.
Without --all, a further page is announced on stderr with the --cursor that reads it.
Times are RFC 3339 (2026-01-02T15:04:05Z).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			asJSON, err := g.jsonOutput()
			if err != nil {
				return err
			}
			filter, err := buildTaskFilter(f)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			list := &client.TaskList{}
			for {
				page, err := c.ListTasks(cmd.Context(), filter)
				if err != nil {
					return apiCallError(err)
				}
				list.Tasks = append(list.Tasks, page.Tasks...)
				list.NextCursor = page.NextCursor
				if !f.all || page.NextCursor == "" {
					break
				}
				filter.Cursor = page.NextCursor
			}
			if list.Tasks == nil {
				list.Tasks = []client.Task{}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), list)
			}
			if err := printTaskList(cmd.OutOrStdout(), list.Tasks); err != nil {
				return err
			}
			if list.NextCursor != "" {
				_, _ = fmt.Fprintf(cmd.ErrOrStderr(), "more tasks: --cursor %s\n", list.NextCursor)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.states, "state", nil, "task state(s), comma-separated (e.g. error,cancelled)")
	fl.StringVar(&f.namespace, "namespace", "", "template namespace")
	fl.StringVar(&f.name, "name", "", "template name")
	fl.StringVar(&f.createdAfter, "created-after", "", "only tasks created after this RFC 3339 time")
	fl.StringVar(&f.createdBefore, "created-before", "", "only tasks created before this RFC 3339 time")
	fl.StringVar(&f.correlationID, "correlation-id", "", "correlation ID (UUID)")
	fl.StringVar(&f.parentCorrelationID, "parent-correlation-id", "", "parent correlation ID (UUID): the children of a workflow")
	fl.IntVar(&f.limit, "limit", client.DefaultTaskListLimit, fmt.Sprintf("page size, 1 to %d", client.MaxTaskListLimit))
	fl.StringVar(&f.cursor, "cursor", "", "read the page after this cursor (printed after a full page)")
	fl.BoolVar(&f.all, "all", false, "read every page")
	return cmd
}

// buildTaskFilter checks the flags of task list, naming the flag at fault.
func buildTaskFilter(f taskListFlags) (client.TaskFilter, error) {
	filter := client.TaskFilter{States: f.states, Namespace: f.namespace, Name: f.name, Limit: f.limit, Cursor: f.cursor}
	if f.limit < 1 || f.limit > client.MaxTaskListLimit {
		return filter, usageError("--limit must be between 1 and %d, got %d", client.MaxTaskListLimit, f.limit)
	}
	for _, t := range []struct {
		flag, raw string
		dst       **time.Time
	}{{"--created-after", f.createdAfter, &filter.CreatedAfter}, {"--created-before", f.createdBefore, &filter.CreatedBefore}} {
		if t.raw == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, t.raw)
		if err != nil {
			return filter, usageError("%s must be an RFC 3339 time (2026-01-02T15:04:05Z), got %q", t.flag, t.raw)
		}
		*t.dst = &at
	}
	for _, u := range []struct {
		flag, raw string
		dst       **uuid.UUID
	}{{"--correlation-id", f.correlationID, &filter.CorrelationID}, {"--parent-correlation-id", f.parentCorrelationID, &filter.ParentCorrelationID}} {
		if u.raw == "" {
			continue
		}
		id, err := parseUUIDFlag(u.flag, u.raw)
		if err != nil {
			return filter, err
		}
		*u.dst = &id
	}
	return filter, nil
}

// taskArgs does what every read command does first: check --output, parse
// the UUID it was given and build the client.
func taskArgs(g *globalFlags, rawID string) (bool, *client.Client, uuid.UUID, error) {
	asJSON, err := g.jsonOutput()
	if err != nil {
		return false, nil, uuid.Nil, err
	}
	id, err := uuid.Parse(rawID)
	if err != nil {
		return false, nil, uuid.Nil, usageError("%q is not a UUID", rawID)
	}
	c, err := g.client()
	if err != nil {
		return false, nil, uuid.Nil, err
	}
	return asJSON, c, id, nil
}

// checkJSONObject says what is wrong with raw when it is not one JSON object.
func checkJSONObject(raw string) error {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return err
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("got %.40s", strings.TrimSpace(raw))
	}
	return nil
}

func parseUUIDFlag(flag, raw string) (uuid.UUID, error) {
	id, err := uuid.Parse(raw)
	if err != nil {
		return uuid.Nil, usageError("%s must be a UUID, got %q", flag, raw)
	}
	return id, nil
}

// printTask prints a task as JSON or as aligned "key value" lines; full adds
// what matters once a task has run: step counts, times, result and error.
func printTask(w io.Writer, asJSON bool, t *client.Task, full bool) error {
	if asJSON {
		return printJSON(w, t)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { _, _ = fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("task_uuid", t.TaskUUID.String())
	row("template", t.Namespace+"/"+t.Name+"@"+t.Version)
	row("correlation_id", t.CorrelationID.String())
	if t.ParentCorrelationID != nil {
		row("parent_correlation_id", t.ParentCorrelationID.String())
	}
	row("state", t.State)
	if full {
		row("steps", fmt.Sprintf("%d total, %d complete, %d in progress, %d enqueued, %d pending, %d failed",
			t.TotalSteps, t.CompletedSteps, t.InProgressSteps, t.EnqueuedSteps, t.PendingSteps, t.FailedSteps))
		row("created_at", t.CreatedAt.Format(timeLayout))
		if t.CompletedAt != nil {
			row("completed_at", t.CompletedAt.Format(timeLayout))
		}
		if len(t.Result) > 0 {
			b, err := json.Marshal(t.Result)
			if err != nil {
				return fmt.Errorf("encoding task result: %w", err)
			}
			row("result", string(b))
		}
		if t.Error != nil {
			row("error", formatStepError(t.Error))
		}
	}
	return tw.Flush()
}

func formatStepError(e *client.StepError) string {
	var b strings.Builder
	if e.Step != "" {
		fmt.Fprintf(&b, "step %s: ", e.Step)
	}
	b.WriteString(e.Message)
	fmt.Fprintf(&b, " (%s", e.Type)
	if e.Code != "" {
		fmt.Fprintf(&b, ", code %s", e.Code)
	}
	if e.Attempt > 0 {
		fmt.Fprintf(&b, ", attempt %d", e.Attempt)
	}
	b.WriteString(")")
	return b.String()
}

// printSteps prints one row per state transition, the step's name, state and
// attempts on its first row only, so the history reads down the table.
func printSteps(w io.Writer, steps []client.Step) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "STEP\tSTATE\tATTEMPTS\tTRANSITION\tAT")
	for _, s := range steps {
		name, state, attempts := s.Name, s.State, fmt.Sprintf("%d/%d", s.Attempts, s.MaxAttempts)
		if len(s.Transitions) == 0 {
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t\t\n", name, state, attempts)
			continue
		}
		for _, tr := range s.Transitions {
			from := tr.From
			if from == "" {
				from = "(new)"
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s -> %s\t%s\n", name, state, attempts, from, tr.To, tr.At.Format(timeLayout))
			name, state, attempts = "", "", ""
		}
	}
	return tw.Flush()
}

func printTaskList(w io.Writer, tasks []client.Task) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "TASK_UUID\tTEMPLATE\tSTATE\tCREATED_AT")
	for _, t := range tasks {
		_, _ = fmt.Fprintf(tw, "%s\t%s/%s@%s\t%s\t%s\n", t.TaskUUID, t.Namespace, t.Name, t.Version, t.State, t.CreatedAt.Format(timeLayout))
	}
	return tw.Flush()
}
