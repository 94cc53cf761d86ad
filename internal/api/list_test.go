package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
)

func TestListTasks(t *testing.T) {
	t.Parallel()

	list := func(t *testing.T, b *testBundle, query string) client.TaskList {
		t.Helper()
		rec := b.do(t, http.MethodGet, "/v1/tasks?"+query, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var l client.TaskList
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &l))
		return l
	}

	t.Run("PagesNewestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var ids []uuid.UUID
		for range 5 {
			rec := b.do(t, http.MethodPost, "/v1/tasks", validBody)
			ids = append(ids, decodeTask(t, rec).TaskUUID)
		}
		var got []uuid.UUID
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 3)
			l := list(t, b, url.Values{"limit": {"2"}, "cursor": {cursor}}.Encode())
			for _, task := range l.Tasks {
				got = append(got, task.TaskUUID)
			}
			if l.NextCursor == "" {
				break
			}
			cursor = l.NextCursor
		}
		require.Equal(t, []uuid.UUID{ids[4], ids[3], ids[2], ids[1], ids[0]}, got)
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		corr := uuid.New()
		b.do(t, http.MethodPost, "/v1/tasks", validBody, client.CorrelationIDHeader, corr.String())
		b.do(t, http.MethodPost, "/v1/tasks", `{"namespace":"billing","name":"invoice","parent_correlation_id":"`+corr.String()+`"}`)
		require.Len(t, list(t, b, "").Tasks, 2)
		require.Len(t, list(t, b, "correlation_id="+corr.String()).Tasks, 1)
		require.Len(t, list(t, b, "parent_correlation_id="+corr.String()).Tasks, 1)
		require.Len(t, list(t, b, "state=pending&namespace=billing&name=invoice").Tasks, 2)
		require.Empty(t, list(t, b, "state=error,cancelled").Tasks)
		future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
		require.Empty(t, list(t, b, "created_after="+future).Tasks)
		require.Len(t, list(t, b, "created_before="+future).Tasks, 2)
	})

	t.Run("BadParameters", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, c := range []struct{ query, code, field string }{
			{"stat=error", client.CodeUnknownField, "stat"},
			{"state=bogus", client.CodeInvalidField, "state"},
			{"state=error&state=complete", client.CodeInvalidField, "state"},
			{"namespace=Bad-NS", client.CodeInvalidField, "namespace"},
			{"limit=0", client.CodeInvalidField, "limit"},
			{"limit=501", client.CodeInvalidField, "limit"},
			{"limit=x", client.CodeInvalidField, "limit"},
			{"created_after=yesterday", client.CodeInvalidField, "created_after"},
			{"created_after=2026-01-02T00:00:00Z&created_before=2026-01-01T00:00:00Z", client.CodeInvalidField, "created_before"},
			{"correlation_id=xyz", client.CodeInvalidField, "correlation_id"},
			{"cursor=not-ours", client.CodeInvalidField, "cursor"},
		} {
			requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks?"+c.query, ""), http.StatusBadRequest, c.code, c.field)
		}
	})
}
