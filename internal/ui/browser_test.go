package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
)

// EnvScreenshots names a directory for the browser tests' screenshots; by
// default they go to a fresh directory under the system's temp dir, kept
// after the test and named in its log.
const EnvScreenshots = "TASKER_UI_SCREENSHOTS"

// browserTimeout bounds the whole browser session.
const browserTimeout = 2 * time.Minute

// chromium finds Debian's Chromium (scripts/test-setup.sh installs it). A
// missing browser fails the test: the console is only tested in a real one.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run scripts/test-setup.sh (apt-get install chromium)")
	return ""
}

// browser starts a headless Chromium with a fresh profile, with the flags
// that keep it from reaching anything but the test server.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	require.NoError(t, chromedp.Do(bctx), "starting chromium")
	return bctx
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv(EnvScreenshots); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	d, err := os.MkdirTemp("", "tasker-ui-screenshots-")
	require.NoError(t, err)
	return d
}

type page struct {
	t      *testing.T
	ctx    context.Context
	base   string
	shot   string
	opened int
}

// open loads the console at hash and waits for sel to be visible.
func (p *page) open(hash, sel string) {
	p.t.Helper()
	// A query of its own makes every open a fresh document, even of the
	// page already shown (a changed fragment alone would not reload).
	p.opened++
	url := fmt.Sprintf("%s/ui/?open=%d%s", p.base, p.opened, hash)
	require.NoError(p.t, chromedp.Do(p.ctx, chromedp.Navigate(url)), "opening %s", hash)
	p.wait(sel)
}

// wait waits for sel to be visible; on failure it saves what the page shows.
func (p *page) wait(sel string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		p.screenshot("failed-" + strings.NewReplacer("/", "_", " ", "_").Replace(p.t.Name()))
		var text string
		text, _ = chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("main").innerText`))
		p.t.Fatalf("waiting for %s: %v; the page shows:\n%s", sel, err, text)
	}
}

// poll waits until the JavaScript expression is truthy.
func (p *page) poll(expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(p.t, err, "waiting for %s", expr)
}

// eval evaluates expr in the page and decodes its value.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	require.NoError(p.t, err, "evaluating %s", expr)
	return v
}

func (p *page) screenshot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	require.NoError(p.t, err)
	path := filepath.Join(p.shot, name+".png")
	require.NoError(p.t, os.WriteFile(path, png, 0o644))
	p.t.Logf("screenshot %s", path)
}

// viewportShot saves what a laptop screen shows of the page (the README's picture).
func (p *page) viewportShot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	require.NoError(p.t, err)
	path := filepath.Join(p.shot, name+".png")
	require.NoError(p.t, os.WriteFile(path, png, 0o644))
	p.t.Logf("screenshot %s", path)
}

// nodeStates maps each DAG node's step to its drawn state.
func (p *page) nodeStates() map[string]string {
	p.t.Helper()
	m := eval[map[string]string](p, `Object.fromEntries([...document.querySelectorAll("#dag .dag-node")].map(n => [n.dataset.step, n.dataset.state]))`)
	return m
}

// bars lists the timeline's attempt bars as "step#attempt:outcome".
func (p *page) bars() []string {
	p.t.Helper()
	out := eval[[]string](p, `[...document.querySelectorAll("#timeline .gantt-attempt")].map(b => b.dataset.step + "#" + b.dataset.attempt + ":" + b.dataset.outcome)`)
	return out
}

// wantBars is one bar per attempt: per enqueue in the step's history.
func wantBars(steps []client.Step) int {
	n := 0
	for _, st := range steps {
		for _, tr := range st.Transitions {
			if tr.To == "enqueued" {
				n++
			}
		}
	}
	return n
}

func stepStates(steps []client.Step) map[string]string {
	m := map[string]string{}
	for _, st := range steps {
		m[st.Name] = st.State
	}
	return m
}

func TestConsoleInBrowser(t *testing.T) {
	s := startStack(t, "")
	diamond := s.create(t, "diamond_workflow/diamond_pattern")
	retried := s.create(t, "retry_workflow/retry_mechanics")
	failed := s.create(t, "retry_workflow/retry_exhaustion")
	parent := s.create(t, "nested_workflow/parent_with_child")
	waiting := s.create(t, unserved+"/mathematical_sequence")
	diamondTask := s.terminal(t, diamond)
	require.Equal(t, "complete", diamondTask.State)
	require.Len(t, diamondTask.TraceID, 32)
	require.Equal(t, "complete", s.terminal(t, retried).State)
	require.Equal(t, "error", s.terminal(t, failed).State)
	parentTask := s.terminal(t, parent)
	require.Equal(t, "complete", parentTask.State)
	s.waitFor(t, waiting, "with a step enqueued", func(task *client.Task) bool { return task.EnqueuedSteps == 1 })

	p := &page{t: t, ctx: browser(t), base: s.url, shot: screenshotDir(t)}

	t.Run("TaskPage", func(t *testing.T) {
		p.t = t
		for _, c := range []struct {
			name string
			id   uuid.UUID
		}{{"task-diamond", diamond}, {"task-retried", retried}, {"task-failed", failed}, {"task-waiting", waiting}} {
			steps := s.steps(t, c.id)
			p.open("#/tasks/"+c.id.String(), "#timeline svg")
			require.Equal(t, stepStates(steps), p.nodeStates(), c.name)
			bars := p.bars()
			require.Len(t, bars, wantBars(steps), "%s: %v", c.name, bars)
			rows := eval[int](p, `document.querySelectorAll("table.steps tbody tr").length`)
			require.Equal(t, len(steps), rows, c.name)
			if c.id != waiting {
				p.screenshot(c.name)
			}
		}
		// Every attempt of a retried step is a bar of its own.
		p.open("#/tasks/"+retried.String(), "#timeline svg")
		require.Equal(t, []string{"fail_twice_then_succeed#1:retry", "fail_twice_then_succeed#2:retry", "fail_twice_then_succeed#3:complete"}, p.bars())
		p.open("#/tasks/"+failed.String(), "#timeline svg")
		require.Equal(t, []string{"always_fail#1:retry", "always_fail#2:retry", "always_fail#3:error"}, p.bars())
		errText := eval[string](p, `document.querySelector('tr[data-step="always_fail"]').textContent`)
		require.Contains(t, errText, "planned failure on attempt 3")
	})

	t.Run("DiamondEdgesAndKeyboard", func(t *testing.T) {
		p.t = t
		p.open("#/tasks/"+diamond.String(), "#dag svg")
		p.viewportShot("console-task")
		edges := eval[[]string](p, `[...document.querySelectorAll("#dag .dag-edge")].map(e => e.dataset.from + ">" + e.dataset.to).sort()`)
		require.Equal(t, []string{"diamond_branch_b>diamond_end", "diamond_branch_c>diamond_end",
			"diamond_start>diamond_branch_b", "diamond_start>diamond_branch_c"}, edges)
		layers := eval[map[string]string](p, `Object.fromEntries([...document.querySelectorAll("#dag .dag-node")].map(n => [n.dataset.step, n.dataset.layer]))`)
		require.Equal(t, map[string]string{"diamond_start": "0", "diamond_branch_b": "1", "diamond_branch_c": "1", "diamond_end": "2"}, layers)
		// A node is reachable from the keyboard and Enter takes focus to its row.
		require.NoError(t, chromedp.Do(p.ctx, chromedp.Focus(chromedp.CSS(`#dag .dag-node[data-step="diamond_end"]`)),
			chromedp.KeyEvent("\r")))
		p.poll(`document.activeElement && document.activeElement.id === "step-diamond_end"`)
		// The trace link follows the configured template.
		href := eval[string](p, `document.getElementById("trace-link").href`)
		require.Equal(t, "http://jaeger.example:16686/trace/"+diamondTask.TraceID, href)
	})

	t.Run("ChildTasksAndCorrelationLinks", func(t *testing.T) {
		p.t = t
		p.open("#/tasks/"+parent.String(), "#children a")
		links := eval[[]string](p, `[...document.querySelectorAll("#children a")].map(a => a.getAttribute("href"))`)
		require.Len(t, links, 1)
		require.NoError(t, chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS("#children a"))))
		p.poll(`document.querySelector("a[data-parent]") !== null`)
		child := eval[string](p, `location.hash`)
		childID := uuid.MustParse(strings.TrimPrefix(child, "#/tasks/"))
		childTask, err := s.backend.GetTask(context.Background(), childID)
		require.NoError(t, err)
		require.Equal(t, parentTask.CorrelationID, *childTask.ParentCorrelationID)
		// The parent correlation ID leads to a search that finds the parent.
		require.NoError(t, chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS("a[data-parent]"))))
		p.poll(fmt.Sprintf(`document.querySelectorAll("table.tasks tbody tr").length === 1 && document.querySelector('tr[data-task="%s"]') !== null`, parent))
		p.screenshot("search-by-correlation-id")
	})

	t.Run("Trace", func(t *testing.T) {
		p.t = t
		// Wait until Jaeger has the worker's side of the trace too.
		var spans int
		deadline := time.Now().Add(30 * time.Second)
		for {
			// A worker's span ends just after its result is in, so it may
			// miss a flush made as soon as the task is complete.
			s.flush()
			tr, err := s.jaeger.Trace(context.Background(), diamondTask.TraceID)
			if err == nil {
				n := 0
				for _, sp := range tr.Spans {
					if sp.OperationName == "worker.execute_step_with_context" {
						n++
					}
				}
				if n >= 4 {
					spans = len(tr.Spans)
					break
				}
			}
			require.False(t, time.Now().After(deadline), "Jaeger never had the diamond task's worker spans (last error %v)", err)
			time.Sleep(100 * time.Millisecond)
		}
		p.open("#/tasks/"+diamond.String(), "#trace svg")
		rows := eval[int](p, `document.querySelectorAll("#trace .span-row").length`)
		require.Equal(t, spans, rows)
		// Selecting a span shows its attributes.
		require.NoError(t, chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(`#trace .span-row`))))
		p.poll(`document.querySelectorAll("#span-attrs tr").length >= 4`)
		p.screenshot("task-trace")
	})

	t.Run("Templates", func(t *testing.T) {
		p.t = t
		p.open("#/templates", ".card.template svg")
		cards := eval[int](p, `document.querySelectorAll(".card.template").length`)
		nodes := eval[int](p, `document.querySelectorAll(".card.template .dag-node").length`)
		require.Equal(t, len(s.templates), cards)
		want := 0
		for _, tpl := range s.templates {
			want += len(tpl.Steps)
		}
		require.Equal(t, want, nodes)
		p.screenshot("templates")
	})

	t.Run("QueuesAndWorkers", func(t *testing.T) {
		p.t = t
		p.open("#/queues", "#queues")
		// The waiting task and the nested task's child wait in the unserved queue.
		p.poll(`Number(document.querySelector('tr[data-queue="worker_` + unserved + `_queue"]').dataset.depth) >= 2`)
		live := eval[map[string]string](p, `Object.fromEntries([...document.querySelectorAll("#namespaces tr[data-namespace]")].map(r => [r.dataset.namespace, r.dataset.live]))`)
		require.Equal(t, "0", live[unserved])
		require.Equal(t, "1", live["diamond_workflow"])
		p.screenshot("queues")
	})

	t.Run("TasksList", func(t *testing.T) {
		p.t = t
		p.open("#/tasks", "form.filters")
		p.poll(`document.querySelector("#task-results table, #task-results .error-box") !== null`)
		p.screenshot("tasks")
	})
}

// A server that requires a token serves the console, which asks for the
// token once and sends it with every read.
func TestConsoleAsksForToken(t *testing.T) {
	s := startStack(t, "console-secret")
	diamond := s.create(t, "diamond_workflow/diamond_pattern")
	s.terminal(t, diamond)
	p := &page{t: t, ctx: browser(t), base: s.url, shot: screenshotDir(t)}
	p.open("#/queues", "#token")
	p.screenshot("token")
	require.NoError(t, chromedp.Do(p.ctx, chromedp.SendKeys(chromedp.CSS("#token"), "console-secret"),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`))))
	p.wait("#queues")
	// The token lasts for the tab: the next page reads with it too.
	p.open("#/tasks/"+diamond.String(), "#timeline svg")
	require.Len(t, p.bars(), 4)
}
