package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api/apitest"
)

func TestCreateTaskIdempotency(t *testing.T) {
	t.Parallel()

	t.Run("RepeatIs200WithTheSameBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"namespace":"billing","name":"invoice","context":{"a":1,"b":[1,2]},"idempotency_key":"order-7"}`
		first := b.do(t, http.MethodPost, "/v1/tasks", body)
		require.Equal(t, http.StatusCreated, first.Code, first.Body.String())
		// Another trace, other key order and spacing in the context: still the same request.
		again := `{"idempotency_key":"order-7","context":{"b":[1,2], "a":1},"name":"invoice","namespace":"billing"}`
		second := b.do(t, http.MethodPost, "/v1/tasks", again, client.CorrelationIDHeader, uuid.NewString())
		require.Equal(t, http.StatusOK, second.Code, second.Body.String())
		require.Equal(t, first.Body.String(), second.Body.String())
		require.Equal(t, first.Header().Get("Location"), second.Header().Get("Location"))
		require.Equal(t, first.Header().Get(client.CorrelationIDHeader), second.Header().Get(client.CorrelationIDHeader))
	})

	t.Run("RepeatWithAnotherBodyIs409", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPost, "/v1/tasks", `{"namespace":"billing","name":"invoice","context":{"a":1},"idempotency_key":"k"}`)
		require.Equal(t, http.StatusCreated, rec.Code)
		for _, other := range []string{
			`{"namespace":"billing","name":"invoice","context":{"a":2},"idempotency_key":"k"}`,
			`{"namespace":"billing","name":"invoice","context":{"a":1},"priority":5,"idempotency_key":"k"}`,
			`{"namespace":"billing","name":"invoice","context":{"a":1},"tags":["x"],"idempotency_key":"k"}`,
		} {
			rec := b.do(t, http.MethodPost, "/v1/tasks", other)
			requireAPIError(t, rec, http.StatusConflict, client.CodeIdempotencyConflict, "idempotency_key")
		}
	})

	t.Run("KeyIsScopedToNamespaceAndName", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.AddTemplate(apitest.Template("billing", "refund", "1.0.0", "pay"))
		for _, body := range []string{
			`{"namespace":"billing","name":"invoice","idempotency_key":"same"}`,
			`{"namespace":"billing","name":"refund","idempotency_key":"same"}`,
		} {
			rec := b.do(t, http.MethodPost, "/v1/tasks", body)
			require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		}
	})

	t.Run("WithoutKeyEveryRequestCreates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 2 {
			rec := b.do(t, http.MethodPost, "/v1/tasks", validBody)
			require.Equal(t, http.StatusCreated, rec.Code)
		}
	})

	t.Run("BadKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{
			`{"namespace":"billing","name":"invoice","idempotency_key":7}`,
			`{"namespace":"billing","name":"invoice","idempotency_key":"` + strings.Repeat("k", 256) + `"}`,
			`{"namespace":"billing","name":"invoice","idempotency_key":"a\u0000b"}`,
		} {
			rec := b.do(t, http.MethodPost, "/v1/tasks", body)
			requireAPIError(t, rec, http.StatusUnprocessableEntity, client.CodeInvalidField, "idempotency_key")
		}
		require.Empty(t, b.backend.CreateRequests(), "rejected before the backend")
	})
}
