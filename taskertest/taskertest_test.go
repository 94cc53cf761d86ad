package taskertest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/taskertest"
	"github.com/taskerhq/tasker/template"
)

func TestMain(m *testing.M) { dbtest.MainWithExampleDatabase(m, "DATABASE_URL") }

func double(_ context.Context, step *handler.StepContext) (any, error) {
	n, err := handler.Input[int](step, "n")
	if err != nil {
		return nil, handler.Permanent(err)
	}
	if step.Attempt == 1 && n == 13 {
		return nil, errors.New("unlucky, try again")
	}
	return n * 2, nil
}

func TestRunStep(t *testing.T) {
	t.Parallel()
	res := taskertest.RunStep(t, handler.Func(double), taskertest.StepOpts{Context: map[string]int{"n": 21}})
	require.Nil(t, res.Err)
	var v int
	require.NoError(t, res.Decode(&v))
	require.Equal(t, 42, v)

	res = taskertest.RunStep(t, handler.Func(double), taskertest.StepOpts{Context: map[string]int{"n": 13}})
	require.True(t, res.Retryable())
	require.ErrorContains(t, res.Decode(&v), "unlucky")
	res = taskertest.RunStep(t, handler.Func(double), taskertest.StepOpts{Context: map[string]int{"n": 13}, Attempt: 2})
	require.Nil(t, res.Err)

	res = taskertest.RunStep(t, handler.Func(double), taskertest.StepOpts{})
	require.True(t, res.Permanent())
	require.Equal(t, handler.ErrorTypePermanent, res.Err.Type)

	// Output metadata and child tasks.
	sub := &taskertest.Submitter{}
	res = taskertest.RunStep(t, handler.Func(func(ctx context.Context, s *handler.StepContext) (any, error) {
		req, err := s.ChildTask("kids", "child", "", map[string]int{"n": 1})
		if err != nil {
			return nil, err
		}
		id, err := s.SubmitChildTask(ctx, req)
		return handler.Output{Value: id, Metadata: map[string]any{"k": "v"}}, err
	}), taskertest.StepOpts{Submitter: sub})
	require.Nil(t, res.Err)
	require.Equal(t, "v", res.Metadata["k"])
	require.Len(t, sub.Requests(), 1)
	require.Equal(t, res.Step.CorrelationID, *sub.Requests()[0].ParentCorrelationID)

	_, err := taskertest.NewStepContext(taskertest.StepOpts{Context: []int{1}})
	require.ErrorContains(t, err, "context must encode to a JSON object")
}

func TestRunTask(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	reg := handler.NewRegistry()
	reg.MustRegister("math.double", handler.Func(double))
	reg.MustRegister("math.sum", handler.Func(func(_ context.Context, s *handler.StepContext) (any, error) {
		a, err := handler.DependencyResult[int](s, "left")
		if err != nil {
			return nil, err
		}
		b, err := handler.DependencyResult[int](s, "right")
		return a + b, err
	}))
	tpl := &template.Template{Namespace: "math", Name: "diamond", Version: "1.0.0", Steps: []template.Step{
		template.NewStep("left", "math.double"),
		template.NewStep("right", "math.double"),
		template.NewStep("sum", "math.sum", "left", "right"),
	}}
	tpl.Steps[0].Retry.BackoffBase = 0
	tpl.Steps[1].Retry.BackoffBase = 0
	run := taskertest.RunTask(t, pool, tpl, reg, map[string]int{"n": 13}, nil)
	require.Equal(t, "complete", run.Task.State)
	var sum int
	require.NoError(t, run.StepResult("sum", &sum))
	require.Equal(t, 52, sum)
	require.Equal(t, 2, run.Steps["left"].Attempts, "the first attempt failed and was retried")

	run = taskertest.RunTask(t, pool, tpl, reg, map[string]string{"n": "x"}, nil)
	require.Equal(t, "error", run.Task.State)
	require.ErrorContains(t, run.StepResult("sum", &sum), "not complete")
}
