package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
)

func TestStepContextAccessors(t *testing.T) {
	t.Parallel()
	s := &handler.StepContext{
		Context:           json.RawMessage(`{"even_number": 6, "name": "x"}`),
		Inputs:            json.RawMessage(`{"fail_count": 2}`),
		DependencyResults: map[string]json.RawMessage{"a": json.RawMessage(`"36"`)},
		Attempt:           2, MaxAttempts: 2,
	}
	var n int
	require.NoError(t, s.Input("even_number", &n))
	require.Equal(t, 6, n)
	require.ErrorContains(t, s.Input("missing", &n), `no key "missing"`)
	require.ErrorContains(t, s.Input("name", &n), "decoding task context")
	require.NoError(t, s.Init("fail_count", &n))
	require.Equal(t, 2, n)
	var r string
	require.NoError(t, s.DependencyResult("a", &r))
	require.Equal(t, "36", r)
	require.ErrorContains(t, s.DependencyResult("b", &r), `no result for dependency "b"`)
	require.True(t, s.IsRetry())
	require.True(t, s.IsLastAttempt())
}

type recordingSubmitter struct{ got client.TaskRequest }

func (r *recordingSubmitter) SubmitTask(_ context.Context, req client.TaskRequest) (uuid.UUID, error) {
	r.got = req
	return uuid.New(), nil
}

func TestChildTask(t *testing.T) {
	t.Parallel()
	parent := uuid.Must(uuid.NewV7())
	sub := &recordingSubmitter{}
	s := &handler.StepContext{CorrelationID: parent, Submitter: sub}
	req, err := s.ChildTask("linear_workflow", "mathematical_sequence", "1.0.0", map[string]int{"even_number": 2})
	require.NoError(t, err)
	require.Equal(t, parent, *req.ParentCorrelationID)
	require.NotEqual(t, parent, *req.CorrelationID)
	require.Equal(t, uuid.Version(7), req.CorrelationID.Version())
	req.ParentCorrelationID = nil
	_, err = s.SubmitChildTask(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, parent, *sub.got.ParentCorrelationID, "submission fills the parent in")
	_, err = (&handler.StepContext{}).SubmitChildTask(context.Background(), req)
	require.Error(t, err)
}

func TestResults(t *testing.T) {
	t.Parallel()
	ok := handler.Success(42).WithMetadata("k", "v")
	require.True(t, ok.Success)
	require.Equal(t, 42, ok.Value)
	require.Equal(t, "v", ok.Metadata["k"])
	r := handler.Retryable(errors.New("later"))
	require.False(t, r.Success)
	require.True(t, r.Error.Retryable)
	require.Equal(t, handler.ErrorTypeRetryable, r.Error.Type)
	p := handler.Permanent(nil)
	require.False(t, p.Error.Retryable)
	require.Equal(t, "unknown error", p.Error.Message)
	f := handler.Failure("validation", "E1", "bad", false)
	require.Equal(t, "E1", f.Error.Code)
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := handler.NewRegistry()
	require.False(t, r.Has("a"))
	r.Register("b", handler.Func(func(context.Context, *handler.StepContext) handler.Result { return handler.Success("b") }))
	r.Register("a", handler.Func(func(context.Context, *handler.StepContext) handler.Result { return handler.Success("a") }))
	require.Equal(t, []string{"a", "b"}, r.Names())
	h, ok := r.Lookup("a")
	require.True(t, ok)
	require.Equal(t, "a", h.Call(context.Background(), &handler.StepContext{}).Value)
}
