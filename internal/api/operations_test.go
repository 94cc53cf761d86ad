package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
)

func TestOperations(t *testing.T) {
	t.Parallel()

	created := func(t *testing.T, b *testBundle) string {
		rec := b.do(t, http.MethodPost, "/v1/tasks", validBody)
		require.Equal(t, http.StatusCreated, rec.Code)
		return decodeTask(t, rec).TaskUUID.String()
	}

	t.Run("CancelIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := created(t, b)
		for range 2 {
			rec := b.do(t, http.MethodPost, "/v1/tasks/"+id+"/cancel", `{"reason":"typo","actor":"ops","children":true}`)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.Equal(t, "cancelled", decodeTask(t, rec).State)
		}
		rec := b.do(t, http.MethodPost, "/v1/tasks/"+id+"/cancel", "") // no body at all
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	})

	t.Run("StateConflicts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := created(t, b)
		requireAPIError(t, b.do(t, http.MethodPost, "/v1/tasks/"+id+"/retry", `{}`), http.StatusConflict, client.CodeStateConflict, "task_uuid")
		requireAPIError(t, b.do(t, http.MethodPost, "/v1/tasks/"+id+"/steps/fetch/resolve", `{"result":1}`), http.StatusConflict, client.CodeStateConflict, "step")
	})

	t.Run("BadRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := created(t, b)
		for _, c := range []struct {
			path, body  string
			status      int
			code, field string
		}{
			{"/v1/tasks/nope/cancel", `{}`, http.StatusBadRequest, client.CodeInvalidField, "task_uuid"},
			{"/v1/tasks/" + uuid.NewString() + "/cancel", `{}`, http.StatusNotFound, client.CodeNotFound, "task_uuid"},
			{"/v1/tasks/" + id + "/cancel", `{"cascade":true}`, http.StatusBadRequest, client.CodeUnknownField, "cascade"},
			{"/v1/tasks/" + id + "/cancel", `{"children":"yes"}`, http.StatusUnprocessableEntity, client.CodeInvalidField, "children"},
			{"/v1/tasks/" + id + "/cancel", `{"reason":"` + strings.Repeat("r", 129) + `"}`, http.StatusUnprocessableEntity, client.CodeInvalidField, "reason"},
			{"/v1/tasks/" + id + "/retry", `[1]`, http.StatusBadRequest, client.CodeMalformedJSON, ""},
			{"/v1/tasks/" + id + "/steps/fetch/resolve", `{}`, http.StatusUnprocessableEntity, client.CodeMissingField, "result"},
			{"/v1/tasks/" + id + "/steps/nope/resolve", `{"result":1}`, http.StatusNotFound, client.CodeNotFound, "step"},
		} {
			requireAPIError(t, b.do(t, http.MethodPost, c.path, c.body), c.status, c.code, c.field)
		}
	})
}
