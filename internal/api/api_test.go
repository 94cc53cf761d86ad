package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/api/apitest"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// lockedBuffer lets the handler's logger and the test read the same buffer
// without a data race.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records decodes the JSON log lines written so far.
func (b *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		out = append(out, rec)
	}
	return out
}

type testBundle struct {
	backend *apitest.Backend
	handler http.Handler
	logs    *lockedBuffer
}

func setup(t *testing.T, mutate ...func(*api.Config)) *testBundle {
	t.Helper()
	b := &testBundle{
		backend: apitest.NewBackend(
			apitest.Template("billing", "invoice", "1.0.0", "fetch", "charge"),
			apitest.Template("billing", "invoice", "1.1.0", "fetch", "charge", "notify"),
		),
		logs: &lockedBuffer{},
	}
	cfg := api.Config{
		Backend: b.backend,
		Logger:  slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	h, err := api.NewHandler(cfg)
	require.NoError(t, err)
	b.handler = h
	return b
}

// do sends one request; headers are given as name, value pairs.
func (b *testBundle) do(t *testing.T, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	return rec
}

func requireAPIError(t *testing.T, rec *httptest.ResponseRecorder, status int, code, field string) *client.APIError {
	t.Helper()
	require.Equal(t, status, rec.Code, "body: %s", rec.Body.String())
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body client.ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "body: %s", rec.Body.String())
	require.NotNil(t, body.Error, "body: %s", rec.Body.String())
	require.Equal(t, code, body.Error.Code, "message: %s", body.Error.Message)
	require.Equal(t, field, body.Error.Field, "message: %s", body.Error.Message)
	require.NotEmpty(t, body.Error.Message)
	return body.Error
}

func decodeTask(t *testing.T, rec *httptest.ResponseRecorder) client.Task {
	t.Helper()
	var task client.Task
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &task), "body: %s", rec.Body.String())
	return task
}

const validBody = `{"namespace":"billing","name":"invoice"}`

func TestNewHandler(t *testing.T) {
	t.Parallel()

	t.Run("RequiresBackend", func(t *testing.T) {
		t.Parallel()
		_, err := api.NewHandler(api.Config{})
		require.ErrorContains(t, err, "Backend is required")
	})

	t.Run("RejectsNegativeMaxBodyBytes", func(t *testing.T) {
		t.Parallel()
		_, err := api.NewHandler(api.Config{Backend: apitest.NewBackend(), MaxBodyBytes: -1})
		require.ErrorContains(t, err, "MaxBodyBytes")
	})

	t.Run("MountsExtraRoutes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) {
			c.Extra = map[string]http.Handler{"GET /metrics": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = fmt.Fprint(w, "tasker_up 1\n")
			})}
		})
		rec := b.do(t, http.MethodGet, "/metrics", "")
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "tasker_up 1\n", rec.Body.String())
	})

	t.Run("MountsTraces", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) {
			c.Traces = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTeapot)
				_, _ = fmt.Fprintf(w, `{"asked":%q}`, r.PathValue("trace_id"))
			})
		})
		rec := b.do(t, http.MethodGet, "/v1/traces/abc", "")
		require.Equal(t, http.StatusTeapot, rec.Code, "the handler's answer is passed through")
		require.JSONEq(t, `{"asked":"abc"}`, rec.Body.String())
		require.Contains(t, api.Routes(b.handler), api.TracesPattern)

		// Without a handler the route still exists and says why it cannot answer.
		rec = setup(t).do(t, http.MethodGet, "/v1/traces/abc", "")
		requireAPIError(t, rec, http.StatusNotFound, client.CodeNotFound, "")
		require.Contains(t, rec.Body.String(), "no tracing backend")
	})

	t.Run("RejectsBadExtraPattern", func(t *testing.T) {
		t.Parallel()
		_, err := api.NewHandler(api.Config{Backend: apitest.NewBackend(), Extra: map[string]http.Handler{"GET metrics": http.NotFoundHandler()}})
		require.ErrorContains(t, err, `mounting "GET metrics"`)
	})

	t.Run("RejectsExtraConflictingWithBuiltIn", func(t *testing.T) {
		t.Parallel()
		_, err := api.NewHandler(api.Config{Backend: apitest.NewBackend(), Extra: map[string]http.Handler{"GET /health": http.NotFoundHandler()}})
		require.ErrorContains(t, err, `mounting "GET /health"`)
	})

	t.Run("RejectsExtraUnderV1", func(t *testing.T) {
		t.Parallel()
		for _, pattern := range []string{"GET /v1/queues2", "/v1/anything"} {
			_, err := api.NewHandler(api.Config{Backend: apitest.NewBackend(), Extra: map[string]http.Handler{pattern: http.NotFoundHandler()}})
			require.ErrorContains(t, err, "is under /v1/", pattern)
		}
	})

	t.Run("RejectsNilExtraHandler", func(t *testing.T) {
		t.Parallel()
		_, err := api.NewHandler(api.Config{Backend: apitest.NewBackend(), Extra: map[string]http.Handler{"GET /metrics": nil}})
		require.ErrorContains(t, err, "nil handler")
	})
}

func TestCreateTaskValidation(t *testing.T) {
	t.Parallel()

	long := func(n int) string { return strings.Repeat("a", n) }
	manyTags := func(n int) string {
		tags := make([]string, n)
		for i := range tags {
			tags[i] = fmt.Sprintf("%q", fmt.Sprint("t", i))
		}
		return "[" + strings.Join(tags, ",") + "]"
	}
	validID := "0192f5d2-7c1e-7a3b-8f00-0123456789ab"

	tests := []struct {
		name     string
		body     string
		headers  []string
		status   int
		code     string
		field    string
		contains string
	}{
		{name: "TextContentType", body: validBody, headers: []string{"Content-Type", "text/plain"}, status: 415, code: client.CodeUnsupportedMediaType, field: "Content-Type"},
		{name: "FormContentType", body: validBody, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415, code: client.CodeUnsupportedMediaType, field: "Content-Type"},
		{name: "EmptyBody", body: "", status: 400, code: client.CodeMalformedJSON, contains: "empty"},
		{name: "TruncatedJSON", body: `{"namespace":`, status: 400, code: client.CodeMalformedJSON},
		{name: "SyntaxErrorHasOffset", body: `{"namespace" "billing"}`, status: 400, code: client.CodeMalformedJSON, contains: "byte offset 14"},
		{name: "TrailingData", body: validBody + ` {}`, status: 400, code: client.CodeMalformedJSON, contains: "after the JSON object"},
		{name: "TrailingGarbage", body: validBody + `x`, status: 400, code: client.CodeMalformedJSON},
		{name: "BodyIsArray", body: `[]`, status: 400, code: client.CodeMalformedJSON, contains: "JSON object"},
		{name: "BodyIsNull", body: `null`, status: 400, code: client.CodeMalformedJSON, contains: "JSON object"},
		{name: "UnknownField", body: `{"namespace":"billing","name":"invoice","colour":"red"}`, status: 400, code: client.CodeUnknownField, field: "colour", contains: `"colour"`},
		{name: "FieldNamesAreCaseSensitive", body: `{"Namespace":"billing","name":"invoice"}`, status: 400, code: client.CodeUnknownField, field: "Namespace"},
		{name: "MissingNamespace", body: `{"name":"invoice"}`, status: 422, code: client.CodeMissingField, field: "namespace"},
		{name: "EmptyNamespace", body: `{"namespace":"","name":"invoice"}`, status: 422, code: client.CodeMissingField, field: "namespace"},
		{name: "NullNamespace", body: `{"namespace":null,"name":"invoice"}`, status: 422, code: client.CodeMissingField, field: "namespace"},
		{name: "MissingName", body: `{"namespace":"billing"}`, status: 422, code: client.CodeMissingField, field: "name"},
		{name: "NamespaceNotString", body: `{"namespace":7,"name":"invoice"}`, status: 422, code: client.CodeInvalidField, field: "namespace"},
		{name: "NamespaceUppercase", body: `{"namespace":"Billing","name":"invoice"}`, status: 422, code: client.CodeInvalidField, field: "namespace"},
		{name: "NamespaceLeadingDigit", body: `{"namespace":"1billing","name":"invoice"}`, status: 422, code: client.CodeInvalidField, field: "namespace"},
		{name: "NamespaceDash", body: `{"namespace":"bill-ing","name":"invoice"}`, status: 422, code: client.CodeInvalidField, field: "namespace"},
		{name: "NamespaceTooLong", body: `{"namespace":"` + long(65) + `","name":"invoice"}`, status: 422, code: client.CodeInvalidField, field: "namespace"},
		{name: "NameWithSpace", body: `{"namespace":"billing","name":"in voice"}`, status: 422, code: client.CodeInvalidField, field: "name"},
		{name: "VersionTwoParts", body: `{"namespace":"billing","name":"invoice","version":"1.0"}`, status: 422, code: client.CodeInvalidField, field: "version"},
		{name: "VersionWithV", body: `{"namespace":"billing","name":"invoice","version":"v1.0.0"}`, status: 422, code: client.CodeInvalidField, field: "version"},
		{name: "VersionLeadingZero", body: `{"namespace":"billing","name":"invoice","version":"01.0.0"}`, status: 422, code: client.CodeInvalidField, field: "version"},
		{name: "VersionNotString", body: `{"namespace":"billing","name":"invoice","version":1}`, status: 422, code: client.CodeInvalidField, field: "version"},
		{name: "ContextArray", body: `{"namespace":"billing","name":"invoice","context":[1]}`, status: 422, code: client.CodeInvalidField, field: "context", contains: "array"},
		{name: "ContextString", body: `{"namespace":"billing","name":"invoice","context":"{}"}`, status: 422, code: client.CodeInvalidField, field: "context", contains: "string"},
		{name: "ContextNull", body: `{"namespace":"billing","name":"invoice","context":null}`, status: 422, code: client.CodeInvalidField, field: "context", contains: "null"},
		{name: "ContextNumber", body: `{"namespace":"billing","name":"invoice","context":42}`, status: 422, code: client.CodeInvalidField, field: "context", contains: "number"},
		{name: "CorrelationIDNotUUID", body: `{"namespace":"billing","name":"invoice","correlation_id":"abc"}`, status: 422, code: client.CodeInvalidField, field: "correlation_id"},
		{name: "CorrelationIDNumber", body: `{"namespace":"billing","name":"invoice","correlation_id":12}`, status: 422, code: client.CodeInvalidField, field: "correlation_id"},
		{name: "CorrelationIDNil", body: `{"namespace":"billing","name":"invoice","correlation_id":"00000000-0000-0000-0000-000000000000"}`, status: 422, code: client.CodeInvalidField, field: "correlation_id"},
		{name: "ParentCorrelationIDNotUUID", body: `{"namespace":"billing","name":"invoice","parent_correlation_id":"abc"}`, status: 422, code: client.CodeInvalidField, field: "parent_correlation_id"},
		{name: "PriorityTooHigh", body: `{"namespace":"billing","name":"invoice","priority":101}`, status: 422, code: client.CodeInvalidField, field: "priority"},
		{name: "PriorityTooLow", body: `{"namespace":"billing","name":"invoice","priority":-101}`, status: 422, code: client.CodeInvalidField, field: "priority"},
		{name: "PriorityFraction", body: `{"namespace":"billing","name":"invoice","priority":1.5}`, status: 422, code: client.CodeInvalidField, field: "priority"},
		{name: "PriorityString", body: `{"namespace":"billing","name":"invoice","priority":"high"}`, status: 422, code: client.CodeInvalidField, field: "priority"},
		{name: "TooManyTags", body: `{"namespace":"billing","name":"invoice","tags":` + manyTags(65) + `}`, status: 422, code: client.CodeInvalidField, field: "tags"},
		{name: "TagTooLong", body: `{"namespace":"billing","name":"invoice","tags":["ok","` + long(129) + `"]}`, status: 422, code: client.CodeInvalidField, field: "tags", contains: "tags[1]"},
		{name: "TagsNotStrings", body: `{"namespace":"billing","name":"invoice","tags":[1,2]}`, status: 422, code: client.CodeInvalidField, field: "tags"},
		{name: "InitiatorNotString", body: `{"namespace":"billing","name":"invoice","initiator":{}}`, status: 422, code: client.CodeInvalidField, field: "initiator"},
		{name: "HeaderCorrelationIDNotUUID", body: validBody, headers: []string{client.CorrelationIDHeader, "req-42"}, status: 422, code: client.CodeInvalidField, field: client.CorrelationIDHeader},
		{
			name: "ConflictingCorrelationIDs", body: `{"namespace":"billing","name":"invoice","correlation_id":"` + validID + `"}`,
			headers: []string{client.CorrelationIDHeader, "0192f5d2-7c1e-7a3b-8f00-ffffffffffff"}, status: 422, code: client.CodeConflictingCorrelationID, field: "correlation_id",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			rec := b.do(t, http.MethodPost, "/v1/tasks", tt.body, tt.headers...)
			apiErr := requireAPIError(t, rec, tt.status, tt.code, tt.field)
			require.Contains(t, apiErr.Message, tt.contains)
			require.Empty(t, b.backend.CreateRequests(), "the backend must not be called for an invalid request")
		})
	}

	t.Run("BodyTooLargeWithContentLength", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) { c.MaxBodyBytes = 64 })
		body := `{"namespace":"billing","name":"invoice","reason":"` + long(100) + `"}`
		rec := b.do(t, http.MethodPost, "/v1/tasks", body)
		requireAPIError(t, rec, http.StatusRequestEntityTooLarge, client.CodeBodyTooLarge, "")
		require.Empty(t, b.backend.CreateRequests())
	})

	t.Run("BodyTooLargeChunked", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) { c.MaxBodyBytes = 64 })
		body := `{"namespace":"billing","name":"invoice","reason":"` + long(100) + `"}`
		req := httptest.NewRequest(http.MethodPost, "/v1/tasks", strings.NewReader(body))
		req.ContentLength = -1 // as for a chunked upload: only reading finds the size out
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		requireAPIError(t, rec, http.StatusRequestEntityTooLarge, client.CodeBodyTooLarge, "")
		require.Empty(t, b.backend.CreateRequests())
	})

	t.Run("DefaultLimitIsOneMebibyte", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"namespace":"billing","name":"invoice","reason":"` + long(1<<20) + `"}`
		rec := b.do(t, http.MethodPost, "/v1/tasks", body)
		requireAPIError(t, rec, http.StatusRequestEntityTooLarge, client.CodeBodyTooLarge, "")

		body = `{"namespace":"billing","name":"invoice","context":{"blob":"` + long(1<<20-100) + `"}}`
		rec = b.do(t, http.MethodPost, "/v1/tasks", body)
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())

		// Free-text fields are bounded by their columns, not only by the body limit.
		body = `{"namespace":"billing","name":"invoice","reason":"` + long(129) + `"}`
		rec = b.do(t, http.MethodPost, "/v1/tasks", body)
		requireAPIError(t, rec, http.StatusUnprocessableEntity, client.CodeInvalidField, "reason")
	})
}

func TestCreateTaskAccepts(t *testing.T) {
	t.Parallel()

	longest := "b" + strings.Repeat("_", 63)
	tests := []struct {
		name    string
		body    string
		headers []string
		check   func(t *testing.T, req client.TaskRequest)
	}{
		{name: "MinimalBodyGetsEmptyContext", body: validBody, check: func(t *testing.T, req client.TaskRequest) {
			require.JSONEq(t, `{}`, string(req.Context))
			require.Empty(t, req.Version)
		}},
		{name: "ContentTypeWithCharset", body: validBody, headers: []string{"Content-Type", "application/json; charset=utf-8"}},
		{name: "StructuredSuffixContentType", body: validBody, headers: []string{"Content-Type", "application/vnd.tasker+json"}},
		{name: "LongestIdentifiers", body: `{"namespace":"` + longest + `","name":"` + longest + `"}`, check: func(t *testing.T, req client.TaskRequest) {
			require.Equal(t, longest, req.Namespace)
			require.Equal(t, longest, req.Name)
		}},
		{name: "BoundaryValues", body: `{"namespace":"billing","name":"invoice","priority":-100,"tags":["` + strings.Repeat("é", 128) + `"]}`, check: func(t *testing.T, req client.TaskRequest) {
			require.Equal(t, -100, req.Priority)
			require.Len(t, req.Tags, 1)
		}},
		{name: "AllFields", body: `{"namespace":"billing","name":"invoice","version":"1.0.0","context":{"order":7},
			"parent_correlation_id":"0192f5d2-7c1e-7a3b-8f00-0123456789ab","initiator":"alice","source_system":"shop",
			"reason":"month end","tags":["a","b"],"priority":100}`, check: func(t *testing.T, req client.TaskRequest) {
			require.Equal(t, "1.0.0", req.Version)
			require.JSONEq(t, `{"order":7}`, string(req.Context))
			require.Equal(t, "0192f5d2-7c1e-7a3b-8f00-0123456789ab", req.ParentCorrelationID.String())
			require.Equal(t, "alice", req.Initiator)
			require.Equal(t, "shop", req.SourceSystem)
			require.Equal(t, "month end", req.Reason)
			require.Equal(t, []string{"a", "b"}, req.Tags)
			require.Equal(t, 100, req.Priority)
		}},
		{name: "NullOptionalFieldsAreAbsent", body: `{"namespace":"billing","name":"invoice","version":null,"tags":null,"priority":null,"correlation_id":null}`, check: func(t *testing.T, req client.TaskRequest) {
			require.Empty(t, req.Version)
			require.Nil(t, req.Tags)
			require.Equal(t, 7, int(req.CorrelationID.Version()))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.backend.AddTemplate(apitest.Template(longest, longest, "1.0.0", "only"))
			rec := b.do(t, http.MethodPost, "/v1/tasks", tt.body, tt.headers...)
			require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
			reqs := b.backend.CreateRequests()
			require.Len(t, reqs, 1)
			if tt.check != nil {
				tt.check(t, reqs[0])
			}
		})
	}

	t.Run("RespondsWithTask", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPost, "/v1/tasks", `{"namespace":"billing","name":"invoice","version":"1.0.0","context":{"a":1}}`)
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		task := decodeTask(t, rec)
		require.Equal(t, "billing", task.Namespace)
		require.Equal(t, "1.0.0", task.Version)
		require.Equal(t, 2, task.TotalSteps)
		require.JSONEq(t, `{"a":1}`, string(task.Context))
		require.Equal(t, "/v1/tasks/"+task.TaskUUID.String(), rec.Header().Get("Location"))
		require.Equal(t, task.CorrelationID.String(), rec.Header().Get(client.CorrelationIDHeader))
	})
}

func TestCreateTaskCorrelationID(t *testing.T) {
	t.Parallel()

	bodyWithID := func(id string) string {
		return `{"namespace":"billing","name":"invoice","correlation_id":"` + id + `"}`
	}

	t.Run("GeneratedWhenAbsentIsVersion7", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPost, "/v1/tasks", validBody)
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		task := decodeTask(t, rec)
		require.Equal(t, uuid.Version(7), task.CorrelationID.Version())
		require.Equal(t, task.CorrelationID.String(), rec.Header().Get(client.CorrelationIDHeader))
		reqs := b.backend.CreateRequests()
		require.Len(t, reqs, 1)
		require.NotNil(t, reqs[0].CorrelationID, "the backend must receive the generated id")
		require.Equal(t, task.CorrelationID, *reqs[0].CorrelationID)
	})

	t.Run("GeneratedIDsDiffer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		second := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		require.NotEqual(t, first.CorrelationID, second.CorrelationID)
	})

	t.Run("FromHeader", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New() // any version is accepted from a client
		rec := b.do(t, http.MethodPost, "/v1/tasks", validBody, client.CorrelationIDHeader, id.String())
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		require.Equal(t, id, decodeTask(t, rec).CorrelationID)
		require.Equal(t, id.String(), rec.Header().Get(client.CorrelationIDHeader))
		require.Equal(t, id, *b.backend.CreateRequests()[0].CorrelationID)
	})

	t.Run("FromBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New()
		rec := b.do(t, http.MethodPost, "/v1/tasks", bodyWithID(id.String()))
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		require.Equal(t, id, decodeTask(t, rec).CorrelationID)
		require.Equal(t, id.String(), rec.Header().Get(client.CorrelationIDHeader))
	})

	t.Run("SameInHeaderAndBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New()
		rec := b.do(t, http.MethodPost, "/v1/tasks", bodyWithID(id.String()), client.CorrelationIDHeader, strings.ToUpper(id.String()))
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		require.Equal(t, id, decodeTask(t, rec).CorrelationID)
	})

	t.Run("ConflictEchoesNeither", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPost, "/v1/tasks", bodyWithID(uuid.NewString()), client.CorrelationIDHeader, uuid.NewString())
		requireAPIError(t, rec, http.StatusUnprocessableEntity, client.CodeConflictingCorrelationID, "correlation_id")
		require.Empty(t, rec.Header().Get(client.CorrelationIDHeader))
	})

	t.Run("ValidationErrorCarriesHeader", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New()
		rec := b.do(t, http.MethodPost, "/v1/tasks", `{"namespace":"billing"}`, client.CorrelationIDHeader, id.String())
		requireAPIError(t, rec, http.StatusUnprocessableEntity, client.CodeMissingField, "name")
		require.Equal(t, id.String(), rec.Header().Get(client.CorrelationIDHeader))
	})

	t.Run("ValidationErrorCarriesGeneratedID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPost, "/v1/tasks", `{"namespace":"billing","name":"invoice","priority":500}`)
		requireAPIError(t, rec, http.StatusUnprocessableEntity, client.CodeInvalidField, "priority")
		id, err := uuid.Parse(rec.Header().Get(client.CorrelationIDHeader))
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), id.Version())
	})

	t.Run("InvalidHeaderIsNotEchoed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPost, "/v1/tasks", validBody, client.CorrelationIDHeader, "nope")
		requireAPIError(t, rec, http.StatusUnprocessableEntity, client.CodeInvalidField, client.CorrelationIDHeader)
		require.Empty(t, rec.Header().Get(client.CorrelationIDHeader))
	})
}

func TestCreateTaskBackendErrors(t *testing.T) {
	t.Parallel()

	t.Run("UnknownTemplate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPost, "/v1/tasks", `{"namespace":"billing","name":"refund"}`)
		requireAPIError(t, rec, http.StatusNotFound, taskreq.CodeUnknownTemplate, "name")
		require.Len(t, b.backend.CreateRequests(), 1)
	})

	t.Run("UnknownVersion", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPost, "/v1/tasks", `{"namespace":"billing","name":"invoice","version":"9.9.9"}`)
		requireAPIError(t, rec, http.StatusNotFound, taskreq.CodeUnknownVersion, "version")
	})

	t.Run("APIErrorWithoutStatusIs422", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.FailWith("CreateTask", fmt.Errorf("resolving template: %w", &client.APIError{Code: client.CodeInvalidField, Field: "context", Message: "bad"}))
		rec := b.do(t, http.MethodPost, "/v1/tasks", validBody)
		requireAPIError(t, rec, http.StatusUnprocessableEntity, client.CodeInvalidField, "context")
	})

	t.Run("InternalErrorIsLoggedNotLeaked", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.FailWith("CreateTask", errors.New("pq: password authentication failed for user secret_user"))
		id := uuid.New()
		rec := b.do(t, http.MethodPost, "/v1/tasks", validBody, client.CorrelationIDHeader, id.String())
		apiErr := requireAPIError(t, rec, http.StatusInternalServerError, client.CodeInternal, "")
		require.NotContains(t, apiErr.Message, "secret_user")
		require.Equal(t, id.String(), rec.Header().Get(client.CorrelationIDHeader))

		var logged map[string]any
		for _, r := range b.logs.records(t) {
			if r["level"] == "ERROR" {
				logged = r
			}
		}
		require.NotNil(t, logged, "the failure must be logged at error level")
		require.Contains(t, logged["error"], "secret_user")
		require.Equal(t, id.String(), logged["correlation_id"])
		require.Equal(t, "creating task", logged["operation"])
	})
}

func TestGetTask(t *testing.T) {
	t.Parallel()

	t.Run("Found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		rec := b.do(t, http.MethodGet, "/v1/tasks/"+created.TaskUUID.String(), "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, created.TaskUUID, decodeTask(t, rec).TaskUUID)
		require.Equal(t, created.CorrelationID.String(), rec.Header().Get(client.CorrelationIDHeader))
	})

	t.Run("TaskCorrelationIDWinsOverRequestHeader", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		rec := b.do(t, http.MethodGet, "/v1/tasks/"+created.TaskUUID.String(), "", client.CorrelationIDHeader, uuid.NewString())
		require.Equal(t, created.CorrelationID.String(), rec.Header().Get(client.CorrelationIDHeader))
	})

	t.Run("InvalidUUID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks/not-a-uuid", ""), http.StatusBadRequest, client.CodeInvalidField, "task_uuid")
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks/"+uuid.NewString(), ""), http.StatusNotFound, client.CodeNotFound, "task_uuid")
	})

	t.Run("BackendFailure", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.FailWith("GetTask", errors.New("connection reset"))
		requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks/"+uuid.NewString(), ""), http.StatusInternalServerError, client.CodeInternal, "")
	})

	t.Run("UnencodableTaskIs500", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New()
		b.backend.PutTask(client.Task{TaskUUID: id, Context: json.RawMessage(`{broken`)})
		requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks/"+id.String(), ""), http.StatusInternalServerError, client.CodeInternal, "")
	})
}

func TestListSteps(t *testing.T) {
	t.Parallel()

	t.Run("Steps", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		rec := b.do(t, http.MethodGet, "/v1/tasks/"+created.TaskUUID.String()+"/workflow_steps", "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var steps []client.Step
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &steps))
		require.Len(t, steps, 3) // the newest version, 1.1.0, has three steps
		require.Equal(t, []string{"fetch", "charge", "notify"}, []string{steps[0].Name, steps[1].Name, steps[2].Name})
		require.Equal(t, []string{"fetch"}, steps[1].DependsOn)
	})

	t.Run("EmptyIsArray", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New()
		b.backend.PutTask(client.Task{TaskUUID: id})
		rec := b.do(t, http.MethodGet, "/v1/tasks/"+id.String()+"/workflow_steps", "")
		require.Equal(t, http.StatusOK, rec.Code)
		require.JSONEq(t, `[]`, rec.Body.String())
	})

	t.Run("InvalidUUID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks/123/workflow_steps", ""), http.StatusBadRequest, client.CodeInvalidField, "task_uuid")
	})

	t.Run("TaskNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks/"+uuid.NewString()+"/workflow_steps", ""), http.StatusNotFound, client.CodeNotFound, "task_uuid")
	})
}

func TestListTasksByCorrelation(t *testing.T) {
	t.Parallel()

	t.Run("Found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New()
		for range 2 {
			rec := b.do(t, http.MethodPost, "/v1/tasks", validBody, client.CorrelationIDHeader, id.String())
			require.Equal(t, http.StatusCreated, rec.Code)
		}
		b.do(t, http.MethodPost, "/v1/tasks", validBody) // another correlation id

		rec := b.do(t, http.MethodGet, "/v1/tasks?correlation_id="+id.String(), "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, id.String(), rec.Header().Get(client.CorrelationIDHeader))
		var list client.TaskList
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
		require.Len(t, list.Tasks, 2)
		for _, task := range list.Tasks {
			require.Equal(t, id, task.CorrelationID)
		}
	})

	t.Run("NoneIsEmptyArray", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodGet, "/v1/tasks?correlation_id="+uuid.NewString(), "")
		require.Equal(t, http.StatusOK, rec.Code)
		require.JSONEq(t, `{"tasks":[]}`, rec.Body.String())
	})

	t.Run("InvalidCorrelationID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks?correlation_id=xyz", ""), http.StatusBadRequest, client.CodeInvalidField, "correlation_id")
	})
}

func TestTemplates(t *testing.T) {
	t.Parallel()

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodGet, "/v1/templates", "")
		require.Equal(t, http.StatusOK, rec.Code)
		var list client.TemplateList
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
		require.Len(t, list.Templates, 2)
		require.Equal(t, "invoice", list.Templates[0].Name)
		require.Len(t, list.Templates[1].Steps, 3)
	})

	t.Run("NoneIsEmptyArray", func(t *testing.T) {
		t.Parallel()
		h, err := api.NewHandler(api.Config{Backend: apitest.NewBackend(), Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/templates", nil))
		require.JSONEq(t, `{"templates":[]}`, rec.Body.String())
	})

	t.Run("EchoesRequestCorrelationID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := uuid.New()
		rec := b.do(t, http.MethodGet, "/v1/templates", "", client.CorrelationIDHeader, id.String())
		require.Equal(t, id.String(), rec.Header().Get(client.CorrelationIDHeader))
	})

	t.Run("IgnoresMalformedRequestCorrelationID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodGet, "/v1/templates", "", client.CorrelationIDHeader, "nope")
		require.Equal(t, http.StatusOK, rec.Code)
		require.Empty(t, rec.Header().Get(client.CorrelationIDHeader))
	})
}

// deadlineBackend records the deadline Ping was given.
type deadlineBackend struct {
	*apitest.Backend
	deadline chan time.Time
}

func (d deadlineBackend) Ping(ctx context.Context) error {
	dl, _ := ctx.Deadline()
	d.deadline <- dl
	return nil
}

func TestHealth(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodGet, "/health", "")
		require.Equal(t, http.StatusOK, rec.Code)
		require.JSONEq(t, `{"status":"ok","database":"ok"}`, rec.Body.String())
	})

	t.Run("DatabaseDown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.FailWith("Ping", refused())
		for _, path := range []string{"/health", "/health/ready"} {
			rec := b.do(t, http.MethodGet, path, "")
			require.Equal(t, http.StatusServiceUnavailable, rec.Code, path)
			require.Equal(t, strconv.Itoa(api.RetryAfterSeconds), rec.Header().Get("Retry-After"))
			var h client.Health
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &h))
			require.Equal(t, client.Health{Status: "unavailable", Database: "unavailable", Error: "database: connection refused"}, h)
			requireNoAddress(t, rec.Body.String())
		}
		// Liveness checks no dependency: a database outage must not get
		// every process restarted.
		rec := b.do(t, http.MethodGet, "/health/live", "")
		require.Equal(t, http.StatusOK, rec.Code)
		require.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
	})

	t.Run("PingIsBounded", func(t *testing.T) {
		t.Parallel()
		backend := deadlineBackend{Backend: apitest.NewBackend(), deadline: make(chan time.Time, 1)}
		h, err := api.NewHandler(api.Config{Backend: backend, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		start := time.Now()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/health", nil))
		dl := <-backend.deadline
		require.False(t, dl.IsZero(), "Ping must get a deadline")
		require.WithinDuration(t, start.Add(2*time.Second), dl, time.Second)
	})
}

// refused is the error pgx returns when nothing listens at the database's address.
func refused() error {
	return fmt.Errorf("failed to connect to `user=tasker database=secretdb`: %w",
		&net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5432}, Err: syscall.ECONNREFUSED})
}

func requireNoAddress(t *testing.T, body string) {
	t.Helper()
	for _, secret := range []string{"10.1.2.3", "5432", "tasker", "secretdb"} {
		require.NotContains(t, body, secret)
	}
}

// A database outage is 503 with Retry-After on every backend call, never a
// 500, and the answer does not carry the connection error's address or user.
func TestDatabaseUnavailableIs503(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, m := range []string{"CreateTask", "GetTask", "Templates", "Queues", "Workers"} {
		b.backend.FailWith(m, refused())
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/tasks", `{"namespace":"ns","name":"tpl"}`},
		{http.MethodGet, "/v1/tasks/" + uuid.NewString(), ""},
		{http.MethodGet, "/v1/templates", ""},
		{http.MethodGet, "/v1/queues", ""},
		{http.MethodGet, "/v1/workers", ""},
	} {
		rec := b.do(t, c.method, c.path, c.body, "Content-Type", "application/json")
		requireAPIError(t, rec, http.StatusServiceUnavailable, client.CodeUnavailable, "")
		require.Equal(t, strconv.Itoa(api.RetryAfterSeconds), rec.Header().Get("Retry-After"))
		requireNoAddress(t, rec.Body.String())
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()

	t.Run("UnknownRouteIsJSON404", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apiErr := requireAPIError(t, b.do(t, http.MethodGet, "/v2/nothing", ""), http.StatusNotFound, client.CodeNotFound, "")
		require.Contains(t, apiErr.Message, "/v2/nothing")
	})

	t.Run("WrongMethodIsJSON405", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodDelete, "/v1/tasks", "")
		requireAPIError(t, rec, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed, "")
		require.Contains(t, rec.Header().Get("Allow"), "POST")
		require.Contains(t, rec.Header().Get("Allow"), "GET")
	})

	t.Run("WrongMethodOnTask", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := b.do(t, http.MethodPut, "/v1/tasks/"+uuid.NewString(), "{}")
		requireAPIError(t, rec, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed, "")
	})
}

// panickyBackend panics in Templates, as a buggy engine would.
type panickyBackend struct{ *apitest.Backend }

func (panickyBackend) Templates(context.Context) ([]client.Template, error) {
	panic("template cache corrupted")
}

func TestPanicIsJSON500(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	h, err := api.NewHandler(api.Config{
		Backend: panickyBackend{apitest.NewBackend()},
		Logger:  slog.New(slog.NewJSONHandler(logs, nil)),
	})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/templates", nil))
	requireAPIError(t, rec, http.StatusInternalServerError, client.CodeInternal, "")

	records := logs.records(t)
	require.Len(t, records, 1)
	require.Equal(t, "ERROR", records[0]["level"])
	require.Equal(t, "template cache corrupted", records[0]["panic"])
	require.Contains(t, records[0]["stack"], "Templates")
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := uuid.New()
	rec := b.do(t, http.MethodPost, "/v1/tasks", validBody, client.CorrelationIDHeader, id.String())
	require.Equal(t, http.StatusCreated, rec.Code)
	b.do(t, http.MethodGet, "/health", "")

	records := b.logs.records(t)
	require.Len(t, records, 2)
	first := records[0]
	require.Equal(t, "DEBUG", first["level"])
	require.Equal(t, "http request", first["msg"])
	require.Equal(t, "POST", first["method"])
	require.Equal(t, "/v1/tasks", first["path"])
	require.EqualValues(t, http.StatusCreated, first["status"])
	require.Contains(t, first, "duration_ms")
	require.Equal(t, id.String(), first["correlation_id"])

	require.Equal(t, "/health", records[1]["path"])
	require.NotContains(t, records[1], "correlation_id")
}
