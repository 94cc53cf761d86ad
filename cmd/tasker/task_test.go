package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api/apitest"
)

type testBundle struct {
	backend *apitest.Backend
	url     string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	backend := apitest.NewBackend(apitest.Template("billing", "invoice", "1.0.0", "fetch", "charge"))
	return &testBundle{backend: backend, url: apitest.Server(t, backend).URL}
}

type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the tasker command tree as main does, with env as the environment.
func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	root := &cobra.Command{Use: "tasker"}
	var g globalFlags
	g.bind(root, func(k string) string { return env[k] })
	root.AddCommand(newTaskCmd(&g), newTemplateCmd(&g, func(k string) string { return env[k] }), newScheduleCmd(&g))
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	code := execute(t.Context(), root)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// run runs the CLI against the test API.
func (b *testBundle) run(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, nil, append([]string{"--api", b.url}, args...)...)
}

func (b *testBundle) createTask(t *testing.T) client.Task {
	t.Helper()
	res := b.run(t, "task", "create", "--template", "billing/invoice", "--output", "json")
	require.Equal(t, exitOK, res.code, res.stderr)
	var task client.Task
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &task))
	return task
}

func TestTaskCreate(t *testing.T) {
	t.Parallel()

	t.Run("PrintsTask", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		corr, parent := uuid.New(), uuid.New()
		res := b.run(t, "task", "create", "--template", "billing/invoice@1.0.0", "--context", `{"order": 7}`,
			"--correlation-id", corr.String(), "--parent-correlation-id", parent.String())
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Empty(t, res.stderr)

		reqs := b.backend.CreateRequests()
		require.Len(t, reqs, 1)
		require.Equal(t, "billing", reqs[0].Namespace)
		require.Equal(t, "invoice", reqs[0].Name)
		require.Equal(t, "1.0.0", reqs[0].Version)
		require.JSONEq(t, `{"order":7}`, string(reqs[0].Context))
		require.Equal(t, corr, *reqs[0].CorrelationID)
		require.Equal(t, parent, *reqs[0].ParentCorrelationID)

		require.Regexp(t, `(?m)^task_uuid\s+[0-9a-f-]{36}$`, res.stdout)
		require.Regexp(t, `(?m)^correlation_id\s+`+corr.String()+`$`, res.stdout)
		require.Regexp(t, `(?m)^state\s+pending$`, res.stdout)
	})

	t.Run("GeneratesVersion7CorrelationID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		task := b.createTask(t)
		require.Equal(t, uuid.Version(7), task.CorrelationID.Version())
		require.JSONEq(t, `{}`, string(b.backend.CreateRequests()[0].Context))
	})

	t.Run("JSONOutput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		task := b.createTask(t)
		require.Equal(t, "pending", task.State)
		require.Equal(t, 2, task.TotalSteps)
	})

	usage := []struct {
		name    string
		args    []string
		inError string
	}{
		{"MissingTemplate", []string{"task", "create"}, "--template is required"},
		{"TemplateWithoutName", []string{"task", "create", "--template", "billing"}, "--template"},
		{"TemplateBadVersion", []string{"task", "create", "--template", "billing/invoice@1.0"}, "--template"},
		{"TemplateUppercase", []string{"task", "create", "--template", "Billing/invoice"}, "--template"},
		{"ContextNotJSON", []string{"task", "create", "--template", "billing/invoice", "--context", "{order: 7}"}, "--context must be a JSON object"},
		{"ContextArray", []string{"task", "create", "--template", "billing/invoice", "--context", "[1]"}, "--context must be a JSON object"},
		{"ContextNull", []string{"task", "create", "--template", "billing/invoice", "--context", "null"}, "--context must be a JSON object"},
		{"BadCorrelationID", []string{"task", "create", "--template", "billing/invoice", "--correlation-id", "abc"}, "--correlation-id must be a UUID"},
		{"BadParentCorrelationID", []string{"task", "create", "--template", "billing/invoice", "--parent-correlation-id", "abc"}, "--parent-correlation-id must be a UUID"},
		{"NonPositiveTimeout", []string{"task", "create", "--template", "billing/invoice", "--wait", "--timeout", "0s"}, "--timeout must be positive"},
		{"UnknownFlag", []string{"task", "create", "--template", "billing/invoice", "--colour", "red"}, "unknown flag: --colour"},
		{"BadFlagValue", []string{"task", "create", "--template", "billing/invoice", "--timeout", "soon"}, "invalid argument"},
		{"StrayArgument", []string{"task", "create", "--template", "billing/invoice", "extra"}, "unknown command"},
		{"BadOutput", []string{"task", "create", "--template", "billing/invoice", "--output", "yaml"}, "--output must be"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			res := b.run(t, tt.args...)
			require.Equal(t, exitUsage, res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
			require.Contains(t, res.stderr, "error: ")
			require.Contains(t, res.stderr, tt.inError)
			require.Empty(t, b.backend.CreateRequests(), "nothing may be sent for bad input")
		})
	}

	t.Run("APIRejection", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.run(t, "task", "create", "--template", "billing/refund")
		require.Equal(t, exitUsage, res.code)
		require.Equal(t, "error: unknown_template (name): no template billing/refund is registered\n", res.stderr)
		require.Empty(t, res.stdout)
	})

	t.Run("ServerFailure", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.FailWith("CreateTask", errors.New("database on fire"))
		res := b.run(t, "task", "create", "--template", "billing/invoice")
		require.Equal(t, exitFailed, res.code)
		require.Equal(t, "error: internal: internal error while creating task\n", res.stderr)
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		res := runCLI(t, nil, "--api", srv.URL, "task", "create", "--template", "billing/invoice")
		require.Equal(t, exitUnreachable, res.code, res.stderr)
		require.Contains(t, res.stderr, "error: API unreachable")
	})

	t.Run("APIURLFromEnvironment", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := runCLI(t, map[string]string{"TASKER_API_URL": b.url}, "task", "create", "--template", "billing/invoice")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Len(t, b.backend.CreateRequests(), 1)
	})

	t.Run("RetriesAfterRetryAfter", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// A gateway that is unavailable once, saying when to come back,
		// then passes requests on; it notes when each arrived.
		var mu sync.Mutex
		var arrivals []time.Time
		gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			first := len(arrivals) == 1
			mu.Unlock()
			if first {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "restarting", http.StatusServiceUnavailable)
				return
			}
			req, err := http.NewRequestWithContext(r.Context(), r.Method, b.url+r.URL.RequestURI(), r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			req.Header = r.Header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
		}))
		t.Cleanup(gateway.Close)
		res := runCLI(t, nil, "--api", gateway.URL, "task", "create", "--template", "billing/invoice")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Len(t, b.backend.CreateRequests(), 1)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, arrivals, 2)
		require.GreaterOrEqual(t, arrivals[1].Sub(arrivals[0]), time.Second, "retried before Retry-After: 1 had passed")
	})

	t.Run("BadAPIURL", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "--api", "localhost:8080", "task", "create", "--template", "billing/invoice")
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, "--api must be an http(s) URL")
	})
}

func TestTaskCreateWait(t *testing.T) {
	t.Parallel()

	// finishAfter makes the task reach state on the nth GetTask.
	finishAfter := func(b *testBundle, n int, finish func(*client.Task)) {
		gets := 0
		b.backend.OnGet(func(task *client.Task) {
			gets++
			task.State = "in_progress"
			if gets == n {
				finish(task)
			}
		})
	}

	t.Run("Complete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		finishAfter(b, 2, func(task *client.Task) {
			task.State = "complete"
			task.CompletedSteps = 2
			task.Result = map[string]json.RawMessage{"charge": json.RawMessage(`{"charged":42}`)}
		})
		res := b.run(t, "task", "create", "--template", "billing/invoice", "--wait")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Regexp(t, `(?m)^state\s+complete$`, res.stdout)
		require.Regexp(t, `(?m)^result\s+\{"charge":\{"charged":42\}\}$`, res.stdout)
		require.NotContains(t, res.stdout, "error")
	})

	t.Run("ErrorState", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		finishAfter(b, 1, func(task *client.Task) {
			task.State = "error"
			task.Error = &client.StepError{Step: "charge", Message: "card declined", Type: "permanent_error", Code: "declined", Attempt: 1}
		})
		res := b.run(t, "task", "create", "--template", "billing/invoice", "--wait")
		require.Equal(t, exitFailed, res.code)
		require.Regexp(t, `(?m)^state\s+error$`, res.stdout)
		require.Regexp(t, `(?m)^error\s+step charge: card declined \(permanent_error, code declined, attempt 1\)$`, res.stdout)
		require.Contains(t, res.stderr, "finished in state error")
	})

	t.Run("JSONOutputOfFinalTask", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		finishAfter(b, 1, func(task *client.Task) { task.State = "cancelled" })
		res := b.run(t, "task", "create", "--template", "billing/invoice", "--wait", "-o", "json")
		require.Equal(t, exitFailed, res.code)
		var task client.Task
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &task))
		require.Equal(t, "cancelled", task.State)
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		finishAfter(b, -1, nil) // never finishes
		res := b.run(t, "task", "create", "--template", "billing/invoice", "--wait", "--timeout", "50ms")
		require.Equal(t, exitFailed, res.code)
		require.Regexp(t, `(?m)^state\s+in_progress$`, res.stdout)
		require.Contains(t, res.stderr, "did not finish within 50ms (state in_progress)")
	})
}

func TestTaskGet(t *testing.T) {
	t.Parallel()

	t.Run("Text", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.createTask(t)
		res := b.run(t, "task", "get", created.TaskUUID.String())
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Regexp(t, `(?m)^task_uuid\s+`+created.TaskUUID.String()+`$`, res.stdout)
		require.Regexp(t, `(?m)^template\s+billing/invoice@1\.0\.0$`, res.stdout)
		require.Regexp(t, `(?m)^steps\s+2 total, 0 complete, 0 in progress, 0 enqueued, 2 pending, 0 failed$`, res.stdout)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.createTask(t)
		res := b.run(t, "task", "get", created.TaskUUID.String(), "--output", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var task client.Task
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &task))
		require.Equal(t, created.TaskUUID, task.TaskUUID)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New()
		res := b.run(t, "task", "get", id.String())
		require.Equal(t, exitFailed, res.code)
		require.Equal(t, "error: not_found (task_uuid): task "+id.String()+" not found\n", res.stderr)
	})

	t.Run("BadUUID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.run(t, "task", "get", "nope")
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, `"nope" is not a UUID`)
	})

	t.Run("MissingArgument", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.run(t, "task", "get")
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, "accepts 1 arg(s)")
	})
}

func TestTaskSteps(t *testing.T) {
	t.Parallel()

	at := time.Date(2025, 11, 25, 17, 39, 0, 0, time.UTC)
	taskID := uuid.New()
	steps := []client.Step{
		{Name: "fetch", State: "complete", Attempts: 1, MaxAttempts: 3, Transitions: []client.Transition{
			{To: "pending", At: at},
			{From: "pending", To: "enqueued", At: at.Add(time.Millisecond)},
			{From: "enqueued", To: "complete", At: at.Add(5 * time.Millisecond)},
		}},
		{Name: "charge", State: "pending", MaxAttempts: 3, Transitions: []client.Transition{{To: "pending", At: at}}},
	}

	t.Run("Table", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.PutTask(client.Task{TaskUUID: taskID}, steps...)
		res := b.run(t, "task", "steps", taskID.String())
		require.Equal(t, exitOK, res.code, res.stderr)
		lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
		require.Len(t, lines, 5)
		require.Regexp(t, `^STEP\s+STATE\s+ATTEMPTS\s+TRANSITION\s+AT$`, lines[0])
		require.Regexp(t, `^fetch\s+complete\s+1/3\s+\(new\) -> pending\s+2025-11-25T17:39:00\.000Z$`, lines[1])
		require.Regexp(t, `^\s+pending -> enqueued\s+2025-11-25T17:39:00\.001Z$`, lines[2])
		require.Regexp(t, `^\s+enqueued -> complete\s+2025-11-25T17:39:00\.005Z$`, lines[3])
		require.Regexp(t, `^charge\s+pending\s+0/3\s+\(new\) -> pending\s+2025-11-25T17:39:00\.000Z$`, lines[4])
		// The transition column lines up across steps.
		require.Equal(t, strings.Index(lines[1], "(new)"), strings.Index(lines[4], "(new)"))
		require.Equal(t, strings.Index(lines[1], "(new)"), strings.Index(lines[2], "pending ->"))
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.PutTask(client.Task{TaskUUID: taskID}, steps...)
		res := b.run(t, "task", "steps", taskID.String(), "-o", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var got []client.Step
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &got))
		require.Len(t, got, 2)
		require.Len(t, got[0].Transitions, 3)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.run(t, "task", "steps", uuid.NewString())
		require.Equal(t, exitFailed, res.code)
		require.Contains(t, res.stderr, "error: not_found (task_uuid):")
	})
}

func TestTaskList(t *testing.T) {
	t.Parallel()

	t.Run("ByCorrelationID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.createTask(t)
		b.createTask(t)
		res := b.run(t, "task", "list", "--correlation-id", created.CorrelationID.String())
		require.Equal(t, exitOK, res.code, res.stderr)
		lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
		require.Len(t, lines, 2)
		require.Regexp(t, `^TASK_UUID\s+TEMPLATE\s+STATE\s+CREATED_AT$`, lines[0])
		require.Regexp(t, `^`+created.TaskUUID.String()+`\s+billing/invoice@1\.0\.0\s+pending\s+`, lines[1])
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.createTask(t)
		res := b.run(t, "task", "list", "--correlation-id", created.CorrelationID.String(), "-o", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var list client.TaskList
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &list))
		require.Len(t, list.Tasks, 1)
		require.Empty(t, list.NextCursor)
	})

	t.Run("PagesNewestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var created []uuid.UUID
		for range 3 {
			created = append(created, b.createTask(t).TaskUUID)
		}
		res := b.run(t, "task", "list", "--limit", "2")
		require.Equal(t, exitOK, res.code, res.stderr)
		lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
		require.Len(t, lines, 3)
		require.True(t, strings.HasPrefix(lines[1], created[2].String()), "newest first: %s", res.stdout)
		require.True(t, strings.HasPrefix(lines[2], created[1].String()))
		require.Regexp(t, `^more tasks: --cursor \S+\n$`, res.stderr)
		cursor := strings.TrimSpace(strings.TrimPrefix(res.stderr, "more tasks: --cursor "))

		res = b.run(t, "task", "list", "--limit", "2", "--cursor", cursor, "-o", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var list client.TaskList
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &list))
		require.Len(t, list.Tasks, 1)
		require.Equal(t, created[0], list.Tasks[0].TaskUUID)
		require.Empty(t, list.NextCursor)

		res = b.run(t, "task", "list", "--limit", "1", "--all", "-o", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &list))
		require.Len(t, list.Tasks, 3)
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createTask(t)
		res := b.run(t, "task", "list", "--state", "error,cancelled", "--namespace", "billing", "-o", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.JSONEq(t, `{"tasks":[]}`, res.stdout)
		res = b.run(t, "task", "list", "--state", "pending", "--name", "invoice", "--created-after", "2020-01-01T00:00:00Z", "-o", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var list client.TaskList
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &list))
		require.Len(t, list.Tasks, 1)
	})

	t.Run("BadFlags", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--limit", "0"}, "--limit must be between 1 and 500"},
			{[]string{"--created-after", "yesterday"}, "--created-after must be an RFC 3339 time"},
			{[]string{"--parent-correlation-id", "x"}, "--parent-correlation-id must be a UUID"},
			{[]string{"--state", "bogus"}, "invalid_field (state)"},
			{[]string{"--cursor", "bogus"}, "invalid_field (cursor)"},
		} {
			res := b.run(t, append([]string{"task", "list"}, c.args...)...)
			require.Equal(t, exitUsage, res.code, "%v: %s", c.args, res.stderr)
			require.Contains(t, res.stderr, c.want)
		}
	})

	t.Run("BadCorrelationID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.run(t, "task", "list", "--correlation-id", "x")
		require.Equal(t, exitUsage, res.code)
	})
}

func TestTaskUnknownSubcommand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.run(t, "task", "frobnicate")
	require.Equal(t, exitUsage, res.code)
	require.Contains(t, res.stderr, `unknown command "frobnicate" for "tasker task"`)

	res = b.run(t, "task")
	require.Equal(t, exitOK, res.code)
	require.Contains(t, res.stdout, "Available Commands")
}

func TestTemplateList(t *testing.T) {
	t.Parallel()

	t.Run("Table", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.run(t, "template", "list")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Regexp(t, `(?m)^TEMPLATE\s+STEPS\s+DESCRIPTION$`, res.stdout)
		require.Regexp(t, `(?m)^billing/invoice@1\.0\.0\s+2\s*$`, res.stdout)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.run(t, "template", "list", "-o", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var templates []client.Template
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &templates))
		require.Len(t, templates, 1)
	})

	t.Run("ServerFailure", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.FailWith("Templates", errors.New("boom"))
		res := b.run(t, "template", "list")
		require.Equal(t, exitFailed, res.code)
		require.Equal(t, "error: internal: internal error while listing templates\n", res.stderr)
	})

	t.Run("GatewayUnavailable", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no upstream", http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		res := runCLI(t, nil, "--api", srv.URL, "template", "list")
		require.Equal(t, exitUnreachable, res.code)
		require.Equal(t, "error: service_unavailable: no upstream\n", res.stderr)
	})
}

func TestTemplateValidate(t *testing.T) {
	t.Parallel()

	writeFile := func(t *testing.T, content string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "template.yaml")
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	const cyclic = `namespace: billing
name: invoice
version: 1.0.0
steps:
  - name: a
    handler: billing.a
    depends_on: [b]
  - name: b
    handler: billing.b
    depends_on: [a]
`

	const diamond = `namespace: billing
name: invoice
version: 1.2.0
steps:
  - name: fetch
    handler: billing.fetch
  - name: tax
    handler: billing.tax
    depends_on: [fetch]
  - name: discount
    handler: billing.discount
    depends_on: [fetch]
  - name: charge
    handler: billing.charge
    depends_on: [tax, discount]
`

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, diamond)
		res := runCLI(t, nil, "template", "validate", path)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Equal(t, "OK "+path+": billing/invoice@1.2.0, 4 steps\n", res.stdout)
	})

	t.Run("ValidJSON", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, diamond)
		res := runCLI(t, nil, "template", "validate", path, "-o", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.JSONEq(t, `{"file":"`+path+`","valid":true,"template":"billing/invoice@1.2.0","steps":4}`, res.stdout)
	})

	t.Run("ShippedExamples", func(t *testing.T) {
		t.Parallel()
		paths, err := filepath.Glob(filepath.Join("..", "..", "examples", "templates", "*.yaml"))
		require.NoError(t, err)
		require.NotEmpty(t, paths)
		for _, path := range paths {
			res := runCLI(t, nil, "template", "validate", path)
			require.Equal(t, exitOK, res.code, "%s: %s", path, res.stderr)
		}
	})

	t.Run("Cycle", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "template", "validate", writeFile(t, cyclic))
		require.Equal(t, exitFailed, res.code)
		require.Empty(t, res.stdout)
		require.Contains(t, res.stderr, "error: ")
		require.Contains(t, res.stderr, "cycle")
	})

	t.Run("CycleJSON", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, cyclic)
		res := runCLI(t, nil, "template", "validate", path, "-o", "json")
		require.Equal(t, exitFailed, res.code)
		var v templateValidation
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
		require.False(t, v.Valid)
		require.Equal(t, path, v.File)
		require.Contains(t, v.Error, "cycle")
	})

	t.Run("MalformedYAML", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "template", "validate", writeFile(t, "namespace: [unclosed\n"))
		require.Equal(t, exitFailed, res.code)
		require.Contains(t, res.stderr, "parsing template YAML")
	})

	t.Run("MissingFile", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "template", "validate", filepath.Join(t.TempDir(), "absent.yaml"))
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, "no such file")
	})

	t.Run("MissingArgument", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "template", "validate")
		require.Equal(t, exitUsage, res.code)
	})
}

func TestTaskCreateFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tasks.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(`{"namespace":"billing","name":"invoice","context":{"order":1}}

{"namespace":"billing","name":"invoice","context":{"order":2},"priority":5}
`), 0o644))
	res := b.run(t, "task", "create", "--file", path)
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Len(t, b.backend.CreateRequests(), 2)
	require.Equal(t, 5, b.backend.CreateRequests()[1].Priority)
	require.Regexp(t, `(?m)^[0-9a-f-]{36}\s+[0-9a-f-]{36}\s+billing/invoice@1.0.0\s+pending$`, res.stdout)

	// One refused request: nothing is created, and the error names it.
	require.NoError(t, os.WriteFile(path, []byte(`{"namespace":"billing","name":"invoice"}
{"namespace":"billing","name":"nope"}
`), 0o644))
	res = b.run(t, "task", "create", "--file", path)
	require.NotEqual(t, exitOK, res.code)
	require.Contains(t, res.stderr, "tasks[1].name")
	require.Len(t, b.backend.CreateRequests(), 2, "nothing more was created")

	for _, tc := range []struct {
		body, inError string
		args          []string
	}{
		{`{"namespace":"billing","name":"invoice","colour":"red"}`, "line 1", nil},
		{"\n\n", "no task request", nil},
		{`{"namespace":"billing","name":"invoice"}`, "--file takes the whole requests", []string{"--template", "billing/invoice"}},
	} {
		require.NoError(t, os.WriteFile(path, []byte(tc.body), 0o644))
		res = b.run(t, append([]string{"task", "create", "--file", path}, tc.args...)...)
		require.Equal(t, exitUsage, res.code, res.stderr)
		require.Contains(t, res.stderr, tc.inError)
	}
}
