package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
)

func openAPIValidator(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(api.OpenAPIYAML)
	require.NoError(t, err)
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	ok, verrs := v.ValidateDocument()
	for _, e := range verrs {
		t.Errorf("document: %s: %s", e.Message, e.Reason)
		for _, se := range e.SchemaValidationErrors {
			t.Errorf("  %s at %s (%s, line %d)", se.Reason, se.FieldPath, se.KeywordLocation, se.Line)
		}
	}
	require.True(t, ok, "the OpenAPI document is valid OpenAPI 3.1")
	return v
}

// TestOpenAPIDocumentsEveryRoute compares the document's operations with
// the router's patterns, both ways.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	openAPIValidator(t)
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(api.OpenAPIYAML, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "post", "put", "patch", "delete":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	b := setup(t)
	routes := api.Routes(b.handler)
	require.NotEmpty(t, routes)
	slices.Sort(documented)
	slices.Sort(routes)
	require.Equal(t, routes, documented, "router and OpenAPI document name the same routes")
}

// TestResponsesMatchTheOpenAPIDocument calls every route, answering well and
// badly, and validates each answer (and each accepted request) against the
// document with libopenapi-validator.
func TestResponsesMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	v := openAPIValidator(t)
	b := setup(t)
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)

	created := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", `{"namespace":"billing","name":"invoice","context":{"n":1},"tags":["a"]}`))
	id := created.TaskUUID.String()
	done := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
	b.backend.Update(done.TaskUUID, func(tk *client.Task) {
		tk.State = "error"
		tk.Error = &client.StepError{Step: "charge", Message: "declined", Type: "permanent_error"}
		tk.Transitions = append(tk.Transitions, client.Transition{From: "pending", To: "error", Reason: "step_failed_permanently", At: time.Now()})
	})
	steps, err := b.backend.ListSteps(t.Context(), done.TaskUUID)
	require.NoError(t, err)
	steps[0].State = "error"
	b.backend.PutTask(mustGet(t, b, done.TaskUUID), steps...)

	b.backend.SetQueues(client.QueueInfo{Queue: "worker_billing_queue", Depth: 3, Claimable: 2, OldestClaimableAgeSeconds: 1.5})
	b.backend.SetWorkers(client.WorkerInfo{WorkerID: "w1", Namespaces: []string{"billing"}, Hostname: "h", PID: 7,
		StartedAt: time.Now().Add(-time.Minute), LastHeartbeatAt: time.Now()})

	calls := []struct {
		method, path, body string
		status             int
		route              string
	}{
		{"POST", "/v1/tasks", `{"namespace":"billing","name":"invoice","idempotency_key":"k1","delay":"1h"}`, 201, "POST /v1/tasks"},
		{"POST", "/v1/tasks", `{"namespace":"billing","name":"invoice","idempotency_key":"k1","delay":"1h"}`, 200, "POST /v1/tasks"},
		{"POST", "/v1/tasks", `{"namespace":"billing","name":"invoice","idempotency_key":"k1"}`, 409, "POST /v1/tasks"},
		{"POST", "/v1/tasks", `{"namespace":"billing","name":"nope"}`, 404, "POST /v1/tasks"},
		{"POST", "/v1/tasks", `{"namespace":"billing"`, 400, "POST /v1/tasks"},
		{"POST", "/v1/tasks", `{"namespace":"billing","name":"invoice","priority":1000}`, 422, "POST /v1/tasks"},
		{"POST", "/v1/tasks/batch", `{"tasks":[{"namespace":"billing","name":"invoice","idempotency_key":"b1"},{"namespace":"billing","name":"invoice"}]}`, 201, "POST /v1/tasks/batch"},
		{"POST", "/v1/tasks/batch", `{"tasks":[{"namespace":"billing","name":"invoice","idempotency_key":"b1"}]}`, 200, "POST /v1/tasks/batch"},
		{"POST", "/v1/tasks/batch", `{"tasks":[{"namespace":"billing","name":"invoice"},{"namespace":"billing","name":"invoice","priority":1000}]}`, 422, "POST /v1/tasks/batch"},
		{"POST", "/v1/tasks/batch", `{"tasks":[{"namespace":"billing","name":"nope"}]}`, 404, "POST /v1/tasks/batch"},
		{"POST", "/v1/tasks/batch", `{"tasks":[{"namespace":"billing","name":"invoice","idempotency_key":"b1","priority":3}]}`, 409, "POST /v1/tasks/batch"},
		{"POST", "/v1/tasks/batch", `{"tasks":[{"namespace":"billing","name":"invoice","nope":1}]}`, 400, "POST /v1/tasks/batch"},
		{"GET", "/v1/tasks?state=pending&limit=1", "", 200, "GET /v1/tasks"},
		{"GET", "/v1/tasks?state=nope", "", 400, "GET /v1/tasks"},
		{"GET", "/v1/tasks/" + id, "", 200, "GET /v1/tasks/{uuid}"},
		{"GET", "/v1/tasks/" + done.TaskUUID.String() + "?wait=1s", "", 200, "GET /v1/tasks/{uuid}"},
		{"GET", "/v1/tasks/" + uuid.NewString(), "", 404, "GET /v1/tasks/{uuid}"},
		{"GET", "/v1/tasks/not-a-uuid", "", 400, "GET /v1/tasks/{uuid}"},
		{"GET", "/v1/tasks/" + id + "/workflow_steps", "", 200, "GET /v1/tasks/{uuid}/workflow_steps"},
		{"GET", "/v1/tasks/" + uuid.NewString() + "/workflow_steps", "", 404, "GET /v1/tasks/{uuid}/workflow_steps"},
		{"GET", "/v1/tasks/" + done.TaskUUID.String() + "/events", "", 200, "GET /v1/tasks/{uuid}/events"},
		{"GET", "/v1/tasks/" + uuid.NewString() + "/events", "", 404, "GET /v1/tasks/{uuid}/events"},
		{"POST", "/v1/tasks/" + done.TaskUUID.String() + "/steps/" + steps[0].Name + "/resolve", `{"result":{"ok":true},"reason":"by hand"}`, 200, "POST /v1/tasks/{uuid}/steps/{step}/resolve"},
		{"POST", "/v1/tasks/" + id + "/steps/nope/resolve", `{"result":1}`, 404, "POST /v1/tasks/{uuid}/steps/{step}/resolve"},
		{"POST", "/v1/tasks/" + id + "/retry", `{}`, 409, "POST /v1/tasks/{uuid}/retry"},
		{"POST", "/v1/tasks/" + id + "/cancel", `{"reason":"test","actor":"me"}`, 200, "POST /v1/tasks/{uuid}/cancel"},
		{"POST", "/v1/tasks/" + id + "/cancel", `{"nope":1}`, 400, "POST /v1/tasks/{uuid}/cancel"},
		{"POST", "/v1/schedules", `{"name":"nightly","cron":"0 3 * * *","task":{"namespace":"billing","name":"invoice"}}`, 201, "POST /v1/schedules"},
		{"POST", "/v1/schedules", `{"name":"nightly","cron":"0 3 * * *","task":{"namespace":"billing","name":"invoice"}}`, 409, "POST /v1/schedules"},
		{"GET", "/v1/schedules", "", 200, "GET /v1/schedules"},
		{"DELETE", "/v1/schedules/nightly", "", 204, "DELETE /v1/schedules/{name}"},
		{"DELETE", "/v1/schedules/nightly", "", 404, "DELETE /v1/schedules/{name}"},
		{"GET", "/v1/templates", "", 200, "GET /v1/templates"},
		{"GET", "/v1/queues", "", 200, "GET /v1/queues"},
		{"GET", "/v1/workers", "", 200, "GET /v1/workers"},
		// No tracing backend configured: the server's own 404.
		{"GET", "/v1/traces/0af7651916cd43dd8448eb211c80319c", "", 404, "GET /v1/traces/{trace_id}"},
		{"GET", "/health", "", 200, "GET /health"},
		{"GET", "/health/ready", "", 200, "GET /health/ready"},
		{"GET", "/health/live", "", 200, "GET /health/live"},
		{"GET", "/v1/openapi.json", "", 200, "GET /v1/openapi.json"},
	}
	covered := map[string]bool{}
	for _, c := range calls {
		req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, c.status, resp.StatusCode, "%s %s: %s", c.method, c.path, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		vreq, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		vreq.Header = req.Header
		ok, errs := v.ValidateHttpResponse(vreq, resp)
		for _, e := range errs {
			t.Errorf("%s %s → %d: %s: %s (%v)", c.method, c.path, c.status, e.Message, e.Reason, e.SchemaValidationErrors)
		}
		require.True(t, ok || len(errs) > 0)
		if c.status < 300 {
			vreq, _ = http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			vreq.Header = req.Header
			ok, errs = v.ValidateHttpRequest(vreq)
			for _, e := range errs {
				t.Errorf("request %s %s: %s: %s", c.method, c.path, e.Message, e.Reason)
			}
			require.True(t, ok || len(errs) > 0)
		}
		covered[c.route] = true
	}
	for _, r := range api.Routes(b.handler) {
		require.True(t, covered[r], "route %s has no validated answer", r)
	}
	var served map[string]any
	resp, err := http.Get(srv.URL + "/v1/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&served))
	require.Equal(t, "3.1.0", served["openapi"])
}

func mustGet(t *testing.T, b *testBundle, id uuid.UUID) client.Task {
	t.Helper()
	task, err := b.backend.GetTask(t.Context(), id)
	require.NoError(t, err)
	return *task
}
