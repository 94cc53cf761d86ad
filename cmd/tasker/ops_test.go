package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
)

func TestVersionAndExitCodesAreDocumented(t *testing.T) {
	t.Parallel()
	run := func(args ...string) result {
		root := newRootCmd(func(string) string { return "" })
		var stdout, stderr bytes.Buffer
		root.SetOut(&stdout)
		root.SetErr(&stderr)
		root.SetArgs(args)
		code := execute(t.Context(), root)
		return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	}
	res := run("--version")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Regexp(t, `^tasker version \S+`, res.stdout)
	res = run("--help")
	require.Equal(t, exitOK, res.code)
	for _, want := range []string{"Exit codes:", "0  success", "1  failure", "2  usage", "3  the API", "schedule"} {
		require.Contains(t, res.stdout, want)
	}
}

func TestJSONErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := uuid.NewString()
	res := b.run(t, "task", "get", id, "-o", "json")
	require.Equal(t, exitFailed, res.code)
	require.Empty(t, res.stdout)
	var body struct {
		Error struct {
			Code, Field, Message string
			ExitCode             int `json:"exit_code"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stderr), &body), res.stderr)
	require.Equal(t, client.CodeNotFound, body.Error.Code)
	require.Equal(t, "task_uuid", body.Error.Field)
	require.Equal(t, exitFailed, body.Error.ExitCode)

	res = b.run(t, "task", "list", "--limit", "0", "-o", "json")
	require.Equal(t, exitUsage, res.code)
	require.NoError(t, json.Unmarshal([]byte(res.stderr), &body), res.stderr)
	require.Equal(t, "usage", body.Error.Code)
	require.Contains(t, body.Error.Message, "--limit")
}

func TestTaskOperationsCLI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.createTask(t)
	res := b.run(t, "task", "cancel", created.TaskUUID.String(), "--reason", "wrong customer", "-o", "json")
	require.Equal(t, exitOK, res.code, res.stderr)
	var task client.Task
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &task))
	require.Equal(t, "cancelled", task.State)
	res = b.run(t, "task", "retry", created.TaskUUID.String())
	require.Equal(t, exitFailed, res.code, "a cancelled task cannot be retried")
	require.Contains(t, res.stderr, "state_conflict")
	res = b.run(t, "task", "resolve", created.TaskUUID.String(), "fetch")
	require.Equal(t, exitUsage, res.code)
	require.Contains(t, res.stderr, "--result is required")
	res = b.run(t, "task", "resolve", created.TaskUUID.String(), "fetch", "--result", "{oops")
	require.Equal(t, exitUsage, res.code)
}

func TestScheduleCLI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.run(t, "schedule", "create", "nightly", "--cron", "0 3 * * *", "--time-zone", "Europe/Paris", "--template", "billing/invoice")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stdout, "nightly")
	res = b.run(t, "schedule", "create", "nightly", "--cron", "0 3 * * *", "--template", "billing/invoice")
	require.Equal(t, exitFailed, res.code, "the name is taken")
	require.Contains(t, res.stderr, client.CodeAlreadyExists)
	res = b.run(t, "schedule", "list", "-o", "json")
	require.Equal(t, exitOK, res.code, res.stderr)
	var list client.ScheduleList
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &list))
	require.Len(t, list.Schedules, 1)
	require.Equal(t, "Europe/Paris", list.Schedules[0].TimeZone)
	res = b.run(t, "schedule", "delete", "nightly")
	require.Equal(t, exitOK, res.code, res.stderr)
	res = b.run(t, "schedule", "delete", "nightly")
	require.Equal(t, exitFailed, res.code)
	res = b.run(t, "schedule", "create", "x", "--template", "billing/invoice")
	require.Equal(t, exitUsage, res.code)
	require.True(t, strings.Contains(res.stderr, "--cron is required"))
}
