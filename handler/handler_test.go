package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	s := &handler.StepContext{CorrelationID: parent}
	s.SetTaskSubmitter(sub)
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
	require.ErrorIs(t, err, handler.ErrNoSubmitter)
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	require.Nil(t, handler.Classify(nil))

	plain := handler.Classify(errors.New("later"))
	require.True(t, plain.Retryable, "a plain error is retried")
	require.Equal(t, handler.ErrorTypeRetryable, plain.Type)
	require.Equal(t, "later", plain.Error())

	p := handler.Classify(fmt.Errorf("charging card: %w", handler.Permanent(errors.New("card declined"))))
	require.False(t, p.Retryable, "wrapping keeps the classification")
	require.Equal(t, handler.ErrorTypePermanent, p.Type)
	require.Equal(t, "charging card: card declined", p.Error(), "the outer message is kept")
	require.True(t, handler.IsPermanent(p))

	r := handler.Classify(handler.Retryable(nil))
	require.True(t, r.Retryable)
	require.Equal(t, "unknown error", r.Error())

	c := handler.Classify(handler.NewError("validation", "E1", false, errors.New("bad")))
	require.Equal(t, "E1", c.Code)
	require.Equal(t, "validation", c.Type)
	require.False(t, handler.IsPermanent(errors.New("x")))
	require.False(t, handler.IsPermanent(nil))

	untyped := handler.Classify(&handler.Error{Err: errors.New("no type")})
	require.Equal(t, handler.ErrorTypePermanent, untyped.Type, "an untyped non-retryable error is permanent")
}

func TestTypedAccessors(t *testing.T) {
	t.Parallel()
	s := &handler.StepContext{
		Context:           json.RawMessage(`{"order_id": 7, "items": ["a", "b"]}`),
		Inputs:            json.RawMessage(`{"limit": 3}`),
		DependencyResults: map[string]json.RawMessage{"fetch": json.RawMessage(`{"rows": 12}`)},
	}
	id, err := handler.Input[int](s, "order_id")
	require.NoError(t, err)
	require.Equal(t, 7, id)
	items, err := handler.Input[[]string](s, "items")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, items)
	_, err = handler.Input[string](s, "order_id")
	require.ErrorContains(t, err, `decoding task context key "order_id"`)
	limit, err := handler.Init[int](s, "limit")
	require.NoError(t, err)
	require.Equal(t, 3, limit)
	type fetched struct {
		Rows int `json:"rows"`
	}
	f, err := handler.DependencyResult[fetched](s, "fetch")
	require.NoError(t, err)
	require.Equal(t, 12, f.Rows)
	_, err = handler.DependencyResult[fetched](s, "missing")
	require.ErrorContains(t, err, `no result for dependency "missing"`)
}

func TestTyped(t *testing.T) {
	t.Parallel()
	type order struct {
		ID int `json:"order_id"`
	}
	h := handler.Typed(func(_ context.Context, _ *handler.StepContext, in order) (int, error) { return in.ID * 2, nil })
	v, err := h.Handle(context.Background(), &handler.StepContext{Context: json.RawMessage(`{"order_id": 21}`)})
	require.NoError(t, err)
	require.Equal(t, 42, v)
	_, err = h.Handle(context.Background(), &handler.StepContext{Context: json.RawMessage(`{"order_id": "x"}`)})
	require.True(t, handler.IsPermanent(err), "an undecodable task context cannot succeed on retry")
	require.ErrorContains(t, err, "decoding task context")
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := handler.NewRegistry()
	require.False(t, r.Has("a"))
	require.NoError(t, r.RegisterFunc("b", func(context.Context, *handler.StepContext) (any, error) { return "b", nil }))
	require.NoError(t, r.Register("a", handler.Func(func(context.Context, *handler.StepContext) (any, error) { return "a", nil })))
	require.Equal(t, []string{"a", "b"}, r.Names())
	h, ok := r.Lookup("a")
	require.True(t, ok)
	v, err := h.Handle(context.Background(), &handler.StepContext{})
	require.NoError(t, err)
	require.Equal(t, "a", v)

	err = r.Register("a", h)
	require.ErrorIs(t, err, handler.ErrDuplicateHandler)
	require.ErrorContains(t, err, `"a"`)
	require.ErrorContains(t, r.Register("", h), "empty name")
	require.ErrorContains(t, r.Register("c", nil), "nil handler")
	require.PanicsWithError(t, err.Error(), func() { r.MustRegister("a", h) })
	require.False(t, r.Has("c"), "a refused registration adds nothing")
}
