package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/devdb"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/worker"
	"github.com/taskerhq/tasker/template"
)

type devFlags struct {
	db        dbFlags
	listen    string
	once      bool
	verbose   bool
	examples  bool
	templates []string
	logLevel  string
	number    int
	timeout   time.Duration
	getenv    func(string) string
	ruby      devRuby
}

func newDevCmd(getenv func(string) string) *cobra.Command {
	f := devFlags{getenv: getenv}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process on an ephemeral PostgreSQL and run each example workflow",
		Long: `tasker dev starts an ephemeral PostgreSQL from this machine's PostgreSQL binaries
(or uses --database-url; the ephemeral one's URL is printed as DATABASE_URL=...),
applies the migrations, runs orchestration and a Go worker with the example
handlers, serves the REST API, submits one task of each example template and
prints one line for each. With --examples=false it runs no worker: a database,
orchestration and the API for a worker of your own (examples/custom-worker). It keeps serving until Ctrl-C; with --once it
exits after the demo: 0 when every task ended as expected, 1 otherwise.

Logs go to a file whose path is printed at the end, unless --log-level is given
(or TASKER_LOG_LEVEL is set): then they go to stderr.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd, f) },
	}
	f.db.bind(cmd, getenv, false)
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the REST API")
	cmd.Flags().BoolVar(&f.once, "once", false, "exit after the demo (0 when every task ended as expected)")
	cmd.Flags().BoolVar(&f.verbose, "verbose", false, "print each demo task's correlation IDs, result and merged task/step timeline")
	cmd.Flags().BoolVar(&f.examples, "examples", true, "register the example templates, run their handlers and the demo")
	cmd.Flags().StringSliceVar(&f.templates, "templates", nil, "directories of task template YAML files to register (their steps need handlers this process has)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error; logs then go to stderr instead of a file")
	cmd.Flags().IntVar(&f.number, "even-number", 6, "context.even_number of the demo tasks (even, 2..100)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 60*time.Second, "how long the demo waits for each task")
	f.ruby.bind(cmd)
	return cmd
}

func runDev(cmd *cobra.Command, f devFlags) (err error) {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	work, err := loadWorkload(f.templates, f.examples)
	if err != nil {
		return err
	}
	// Checked before PostgreSQL starts, so a taken port fails in a moment.
	ln, err := listen(f.listen)
	if err != nil {
		return err
	}
	defer func() {
		if ln != nil {
			_ = ln.Close()
		}
	}()
	logOut, logPath, closeLog, err := devLogOutput(f)
	if err != nil {
		return err
	}
	defer closeLog()
	obs, err := setupObservabilityTo(ctx, "tasker-orchestration", f.logLevel, "development", logOut)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, obs.shutdown()) }()
	// The worker reports under its own service name, as it would in its own process.
	workerTracer, err := obs.workerTracer(ctx)
	if err != nil {
		return err
	}
	logger := obs.logger
	url := f.db.URL
	if url == "" {
		if _, err := devdb.FindBinDir(); err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		fmt.Fprintln(out, "starting an ephemeral PostgreSQL…")
		cluster, err := devdb.Start(ctx, devdb.Options{Log: func(format string, args ...any) { logger.Debug(fmt.Sprintf(format, args...)) }})
		if err != nil {
			return fmt.Errorf("starting ephemeral PostgreSQL: %w", err)
		}
		defer func() {
			if serr := cluster.Stop(context.Background()); serr != nil && err == nil {
				err = serr
			} else {
				fmt.Fprintln(out, "PostgreSQL stopped")
			}
		}()
		url = cluster.URL("postgres")
		fmt.Fprintf(out, "DATABASE_URL=%s\n", url)
		if f.verbose {
			fmt.Fprintf(out, "PostgreSQL data directory %s\n", cluster.DataDir())
		}
	}
	pool, err := openDB(ctx, url, f.db.MaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	namespaces := work.namespaces()
	if err := work.register(ctx, pool, namespaces); err != nil {
		return err
	}
	namespaces, stopRuby, err := f.ruby.start(ctx, out, logOut, url, f.logLevel, namespaces)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopRuby()) }()
	init, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Logger: logger, Tracer: workerTracer, Metrics: obs.metrics}})
	if err != nil {
		return err
	}
	ecfg := engine.Config{Pool: pool,
		Orchestration: orchestrationConfig(obs.cfg.Orchestration),
		Telemetry:     base.Telemetry{Logger: logger, Metrics: obs.metrics, Tracer: obs.tracer}}
	// With no templates of its own (--examples=false), dev is a database,
	// orchestration and the API for workers in other processes.
	if len(namespaces) > 0 {
		ecfg.Worker = &worker.Config{Namespaces: namespaces, Dispatcher: worker.RegistryDispatcher{Registry: work.handlers},
			Submitter: init,
			Telemetry: base.Telemetry{Tracer: workerTracer}}
	}
	e, err := engine.Start(ctx, ecfg)
	if err != nil {
		return err
	}
	defer func() {
		if serr := e.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	routes, traces, err := obs.apiRoutes()
	if err != nil {
		return err
	}
	srv, err := serveHTTP(ln, e.Backend(), routes, traces, logger, obs.wrapHTTP, obs.cfg.API)
	if err != nil {
		return err
	}
	ln = nil // the server owns it now
	defer func() {
		if serr := srv.Shutdown(); serr != nil && err == nil {
			err = serr
		}
	}()
	fmt.Fprintf(out, "REST API on %s\n\n", srv.URL())

	ok := true
	if f.examples {
		ok = runDemo(ctx, out, client.New(srv.URL()), demoTemplates(work.templates), f.number, f.timeout, f.verbose)
	}
	printNextSteps(out, srv.URL(), url, logPath, f.examples, obs.prov.Enabled())
	if f.once {
		if !ok {
			return failedError("not every demo task ended as expected")
		}
		fmt.Fprintln(out, "every demo task ended as expected")
		return nil
	}
	fmt.Fprintf(out, "serving on %s; Ctrl-C to stop\n", srv.URL())
	<-ctx.Done()
	fmt.Fprintln(out, "\nshutting down")
	return nil
}

// devLogOutput picks where dev's logs go: stderr when a level was asked for,
// else a file, so that the demo's summary stays readable (an expected
// failure, such as the retry-exhaustion example, is logged as an error).
func devLogOutput(f devFlags) (w io.Writer, path string, closeFn func(), err error) {
	if f.logLevel != "" || f.getenv("TASKER_LOG_LEVEL") != "" {
		return os.Stderr, "", func() {}, nil
	}
	file, err := os.CreateTemp("", "tasker-dev-*.log")
	if err != nil {
		return nil, "", nil, fmt.Errorf("creating the log file: %w", err)
	}
	return file, file.Name(), func() { _ = file.Close() }, nil
}

// demoTemplates are the example templates the demo knows how to check.
func demoTemplates(tpls []*template.Template) []*template.Template {
	var out []*template.Template
	for _, t := range tpls {
		if examples.IsExample(t) {
			out = append(out, t)
		}
	}
	return out
}

func printNextSteps(out io.Writer, url, databaseURL, logPath string, withExamples, exporting bool) {
	fmt.Fprintf(out, "\nNext steps\n")
	fmt.Fprintf(out, "  console     %s/ui/ (tasks with their DAGs and traces, templates, queues and workers)\n", url)
	fmt.Fprintf(out, "  templates   curl -s %s/v1/templates\n", url)
	if withExamples {
		fmt.Fprintf(out, "  a task      go run ./cmd/tasker --api %s task create --template linear_workflow/mathematical_sequence --context '{\"even_number\": 6}' --wait\n", url)
		fmt.Fprintf(out, "  its steps   go run ./cmd/tasker --api %s task steps TASK_UUID\n", url)
	} else {
		fmt.Fprintf(out, "  a worker    cd examples/custom-worker && DATABASE_URL='%s' go run . --listen 127.0.0.1:8090\n", databaseURL)
	}
	fmt.Fprintf(out, "  metrics     curl -s %s/metrics\n", url)
	if exporting {
		fmt.Fprintf(out, "  traces      exported over OTLP; find a task's trace with: go run ./cmd/tasker trace CORRELATION_ID\n")
	} else {
		fmt.Fprintf(out, "  traces      OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 with a local Jaeger: docs/observability/tracing.md\n")
	}
	fmt.Fprintf(out, "  your own    a workflow of your own in your own program: examples/custom-worker (README: Your first workflow)\n")
	if logPath != "" {
		fmt.Fprintf(out, "  logs        %s\n", logPath)
	}
	fmt.Fprintln(out)
}

// runDemo submits one task of each template through the REST API and prints
// each outcome. It reports whether every task ended as expected.
func runDemo(ctx context.Context, out io.Writer, c *client.Client, tpls []*template.Template, n int, timeout time.Duration, verbose bool) bool {
	allOK := true
	passed := 0
	for _, tpl := range tpls {
		req, err := client.NewTaskRequest(tpl.Namespace, tpl.Name, tpl.Version, map[string]any{"even_number": n})
		if err != nil {
			fmt.Fprintf(out, "%s: %v\n", tpl.Key(), err)
			allOK = false
			continue
		}
		start := time.Now()
		task, err := c.CreateTask(ctx, req)
		if err != nil {
			fmt.Fprintf(out, "%s: creating task: %v\n", tpl.Key(), err)
			allOK = false
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		final, err := c.WaitTask(wctx, task.TaskUUID)
		cancel()
		elapsed := time.Since(start)
		if err != nil {
			fmt.Fprintf(out, "%s: waiting for task %s: %v\n", tpl.Key(), task.TaskUUID, err)
			allOK = false
			continue
		}
		steps, err := c.ListSteps(ctx, final.TaskUUID)
		if err != nil {
			fmt.Fprintf(out, "%s: listing steps: %v\n", tpl.Key(), err)
			allOK = false
			continue
		}
		verdict := checkDemo(ctx, c, tpl, final, steps, n)
		if verdict != "" {
			allOK = false
		} else {
			passed++
		}
		printDemoLine(out, tpl, final, elapsed, verdict)
		if verbose {
			printDemoTask(out, final, steps)
		}
	}
	fmt.Fprintf(out, "\n%d of %d example tasks ended as expected\n", passed, len(tpls))
	return allOK
}

// printDemoLine is one task's outcome on one line.
func printDemoLine(out io.Writer, tpl *template.Template, t *client.Task, elapsed time.Duration, verdict string) {
	mark, note := "ok", ""
	if verdict != "" {
		mark, note = "!!", "  UNEXPECTED: "+verdict
	} else if t.State == "error" {
		note = "  (fails by design: retries exhausted)"
	}
	fmt.Fprintf(out, "  %s  %-45s %-8s %8.1f ms  correlation_id %s%s\n", mark, tpl.Key(), t.State,
		float64(elapsed.Microseconds())/1000, t.CorrelationID, note)
}

// checkDemo returns "" when the task ended as its template promises, else why not.
func checkDemo(ctx context.Context, c *client.Client, tpl *template.Template, t *client.Task, steps []client.Step, n int) string {
	if want, ok := examples.ExpectedResult(tpl, int64(n)); ok {
		if t.State != "complete" {
			return fmt.Sprintf("expected complete, got %s", t.State)
		}
		for k, v := range want {
			var got string
			if err := json.Unmarshal(t.Result[k], &got); err != nil || got != v {
				return fmt.Sprintf("step %s: expected %s, got %s", k, v, t.Result[k])
			}
		}
		return ""
	}
	switch tpl.Namespace + "/" + tpl.Name {
	case "retry_workflow/retry_mechanics":
		if t.State != "complete" || len(steps) != 1 || steps[0].Attempts != 3 {
			return fmt.Sprintf("expected complete on attempt 3, got %s", t.State)
		}
	case "retry_workflow/retry_exhaustion":
		if t.State != "error" || len(steps) != 1 || steps[0].Attempts != 3 || t.Error == nil {
			return fmt.Sprintf("expected error after 3 attempts, got %s", t.State)
		}
	case "nested_workflow/parent_with_child":
		if t.State != "complete" {
			return fmt.Sprintf("expected complete, got %s", t.State)
		}
		var res struct {
			Child uuid.UUID `json:"child_task_uuid"`
		}
		for _, v := range t.Result {
			_ = json.Unmarshal(v, &res)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		child, err := c.WaitTask(wctx, res.Child)
		if err != nil {
			return fmt.Sprintf("child task: %v", err)
		}
		if child.State != "complete" || child.ParentCorrelationID == nil || *child.ParentCorrelationID != t.CorrelationID {
			return "child task did not complete with the parent's correlation id"
		}
	default:
		if t.State != "complete" {
			return fmt.Sprintf("expected complete, got %s", t.State)
		}
	}
	return ""
}

// printDemoTask prints a task's details and its merged task/step timeline.
func printDemoTask(out io.Writer, t *client.Task, steps []client.Step) {
	fmt.Fprintf(out, "      correlation_id  %s\n", t.CorrelationID)
	if t.ParentCorrelationID != nil {
		fmt.Fprintf(out, "      parent_corr_id  %s\n", *t.ParentCorrelationID)
	}
	fmt.Fprintf(out, "      task_uuid       %s\n", t.TaskUUID)
	if len(t.Result) > 0 {
		b, _ := json.Marshal(t.Result)
		fmt.Fprintf(out, "      result          %s\n", b)
	}
	if t.Error != nil {
		fmt.Fprintf(out, "      error           step %s, attempt %d: %s (%s)\n", t.Error.Step, t.Error.Attempt, t.Error.Message, t.Error.Type)
	}
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	for _, tr := range t.Transitions {
		lines = append(lines, line{tr.At, fmt.Sprintf("task %-28s %s", "", arrow(tr))})
	}
	for _, s := range steps {
		for _, tr := range s.Transitions {
			lines = append(lines, line{tr.At, fmt.Sprintf("step %-28s %s", s.Name, arrow(tr))})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	fmt.Fprintln(out, "      timeline")
	for _, l := range lines {
		fmt.Fprintf(out, "        %s  +%8.2f ms  %s\n", l.at.Local().Format("15:04:05.000"),
			float64(l.at.Sub(t.CreatedAt).Microseconds())/1000, l.text)
	}
	fmt.Fprintln(out)
}

func arrow(tr client.Transition) string {
	from := tr.From
	if from == "" {
		from = "∅"
	}
	s := from + " → " + tr.To
	if tr.Reason != "" {
		s += "  (" + strings.ReplaceAll(tr.Reason, "_", " ") + ")"
	}
	return s
}
