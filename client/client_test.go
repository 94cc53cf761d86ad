package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api/apitest"
)

type testBundle struct {
	backend *apitest.Backend
	server  *httptest.Server
	client  *client.Client
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	backend := apitest.NewBackend(apitest.Template("billing", "invoice", "1.0.0", "fetch", "charge"))
	srv := apitest.Server(t, backend)
	return &testBundle{backend: backend, server: srv, client: client.New(srv.URL+"/", client.WithHTTPClient(srv.Client()))}
}

func (b *testBundle) create(t *testing.T) *client.Task {
	t.Helper()
	req, err := client.NewTaskRequest("billing", "invoice", "", map[string]int{"order": 7})
	require.NoError(t, err)
	task, err := b.client.CreateTask(t.Context(), req)
	require.NoError(t, err)
	return task
}

func requireAPIError(t *testing.T, err error, status int, code, field string) {
	t.Helper()
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, status, apiErr.Status)
	require.Equal(t, code, apiErr.Code)
	require.Equal(t, field, apiErr.Field)
}

func TestCreateTask(t *testing.T) {
	t.Parallel()

	t.Run("SendsRequestAndReturnsTask", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parent := uuid.New()
		req, err := client.NewTaskRequest("billing", "invoice", "1.0.0", map[string]int{"order": 7})
		require.NoError(t, err)
		req = req.WithParentCorrelationID(parent)
		req.Tags = []string{"eu"}
		req.Priority = 5

		task, err := b.client.CreateTask(t.Context(), req)
		require.NoError(t, err)
		require.Equal(t, *req.CorrelationID, task.CorrelationID)
		require.Equal(t, "pending", task.State)
		require.Equal(t, 2, task.TotalSteps)

		sent := b.backend.CreateRequests()
		require.Len(t, sent, 1)
		require.JSONEq(t, `{"order":7}`, string(sent[0].Context))
		require.Equal(t, parent, *sent[0].ParentCorrelationID)
		require.Equal(t, []string{"eu"}, sent[0].Tags)
		require.Equal(t, 5, sent[0].Priority)
	})

	t.Run("ServerGeneratesCorrelationID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		task, err := b.client.CreateTask(t.Context(), client.TaskRequest{Namespace: "billing", Name: "invoice"})
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), task.CorrelationID.Version())
	})

	t.Run("ValidationErrorIsAPIError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.CreateTask(t.Context(), client.TaskRequest{Namespace: "Billing", Name: "invoice"})
		requireAPIError(t, err, http.StatusUnprocessableEntity, client.CodeInvalidField, "namespace")
		require.Empty(t, b.backend.CreateRequests())
	})

	t.Run("UnknownTemplate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.CreateTask(t.Context(), client.TaskRequest{Namespace: "billing", Name: "refund"})
		requireAPIError(t, err, http.StatusNotFound, client.CodeUnknownTemplate, "name")
	})
}

func TestGetTask(t *testing.T) {
	t.Parallel()

	t.Run("Found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.create(t)
		got, err := b.client.GetTask(t.Context(), created.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, created.TaskUUID, got.TaskUUID)
		require.JSONEq(t, `{"order":7}`, string(got.Context))
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.GetTask(t.Context(), uuid.New())
		requireAPIError(t, err, http.StatusNotFound, client.CodeNotFound, "task_uuid")
		require.Contains(t, err.Error(), "not_found (task_uuid): task ")
	})

	t.Run("ServerError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.FailWith("GetTask", errors.New("boom"))
		_, err := b.client.GetTask(t.Context(), uuid.New())
		requireAPIError(t, err, http.StatusInternalServerError, client.CodeInternal, "")
	})
}

func TestListSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.create(t)
	steps, err := b.client.ListSteps(t.Context(), created.TaskUUID)
	require.NoError(t, err)
	require.Len(t, steps, 2)
	require.Equal(t, "fetch", steps[0].Name)
	require.Equal(t, []string{"fetch"}, steps[1].DependsOn)

	_, err = b.client.ListSteps(t.Context(), uuid.New())
	requireAPIError(t, err, http.StatusNotFound, client.CodeNotFound, "task_uuid")
}

func TestListTasksByCorrelation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.create(t)
	b.create(t)

	tasks, err := b.client.ListTasksByCorrelation(t.Context(), created.CorrelationID)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	require.Equal(t, created.TaskUUID, tasks[0].TaskUUID)

	tasks, err = b.client.ListTasksByCorrelation(t.Context(), uuid.New())
	require.NoError(t, err)
	require.Empty(t, tasks)
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	templates, err := b.client.Templates(t.Context())
	require.NoError(t, err)
	require.Len(t, templates, 1)
	require.Equal(t, "invoice", templates[0].Name)
	require.Len(t, templates[0].Steps, 2)
}

func TestQueuesAndWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := client.QueueInfo{Queue: "worker_billing_queue", Depth: 4, Claimable: 3, OldestClaimableAgeSeconds: 2.5}
	b.backend.SetQueues(q)
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := client.WorkerInfo{WorkerID: "w1", Namespaces: []string{"billing"}, Hostname: "h", PID: 7, StartedAt: started, LastHeartbeatAt: started.Add(time.Minute)}
	b.backend.SetWorkers(w)

	queues, err := b.client.Queues(t.Context())
	require.NoError(t, err)
	require.Equal(t, []client.QueueInfo{q}, queues.Queues)
	workers, err := b.client.Workers(t.Context())
	require.NoError(t, err)
	require.Equal(t, []client.WorkerInfo{w}, workers.Workers)
	require.Equal(t, []client.NamespaceWorkers{{Namespace: "billing", LiveWorkers: 1}}, workers.Namespaces)

	b.backend.FailWith("Workers", errors.New("boom"))
	_, err = b.client.Workers(t.Context())
	requireAPIError(t, err, http.StatusInternalServerError, client.CodeInternal, "")
}

func TestHealth(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		h, err := b.client.Health(t.Context())
		require.NoError(t, err)
		require.Equal(t, &client.Health{Status: "ok", Database: "ok"}, h)
	})

	t.Run("Unavailable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.backend.FailWith("Ping", fmt.Errorf("dial tcp 10.0.0.1:5432: %w", syscall.ECONNREFUSED))
		h, err := b.client.Health(t.Context())
		requireAPIError(t, err, http.StatusServiceUnavailable, "service_unavailable", "")
		require.Contains(t, err.Error(), "connection refused")
		require.Equal(t, &client.Health{Status: "unavailable", Database: "unavailable", Error: "database: connection refused"}, h)
	})
}

func TestWaitForTask(t *testing.T) {
	t.Parallel()

	t.Run("PollsUntilTerminal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.create(t)
		gets := 0
		b.backend.OnGet(func(task *client.Task) {
			gets++
			switch gets {
			case 1:
				task.State = "in_progress"
			case 3:
				task.State = "complete"
				task.Result = map[string]json.RawMessage{"charge": json.RawMessage(`{"ok":true}`)}
			}
		})
		task, err := b.client.WaitForTask(t.Context(), created.TaskUUID, time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, "complete", task.State)
		require.JSONEq(t, `{"ok":true}`, string(task.Result["charge"]))
		require.Equal(t, 3, gets)
	})

	t.Run("ContextEndsWait", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.create(t)
		ctx, cancel := context.WithCancel(t.Context())
		gets := 0
		b.backend.OnGet(func(task *client.Task) {
			gets++
			task.State = "in_progress"
			if gets == 2 {
				cancel()
			}
		})
		task, err := b.client.WaitForTask(ctx, created.TaskUUID, time.Millisecond)
		require.ErrorIs(t, err, context.Canceled)
		require.NotNil(t, task, "the last task seen is returned with the error")
		require.Equal(t, "in_progress", task.State)
	})

	t.Run("ErrorEndsWait", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.WaitForTask(t.Context(), uuid.New(), time.Millisecond)
		requireAPIError(t, err, http.StatusNotFound, client.CodeNotFound, "task_uuid")
	})
}

func TestTransportErrors(t *testing.T) {
	t.Parallel()

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close() // nothing listens on its address any more
		_, err := client.New(srv.URL).Templates(t.Context())
		var urlErr *url.Error
		require.ErrorAs(t, err, &urlErr)
		var apiErr *client.APIError
		require.False(t, errors.As(err, &apiErr))
	})

	t.Run("NonJSONErrorBody", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "upstream timed out", http.StatusBadGateway)
		}))
		t.Cleanup(srv.Close)
		_, err := client.New(srv.URL).Templates(t.Context())
		requireAPIError(t, err, http.StatusBadGateway, "bad_gateway", "")
		require.Contains(t, err.Error(), "upstream timed out")
	})

	t.Run("MalformedSuccessBody", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("<html>"))
		}))
		t.Cleanup(srv.Close)
		_, err := client.New(srv.URL).Templates(t.Context())
		require.ErrorContains(t, err, "decoding GET /v1/templates response")
	})
}

func TestWithTokenSendsBearer(t *testing.T) {
	t.Parallel()
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"templates":[]}`))
	}))
	t.Cleanup(srv.Close)
	_, err := client.New(srv.URL, client.WithToken("s3cret")).Templates(t.Context())
	require.NoError(t, err)
	require.Equal(t, "Bearer s3cret", <-got)
	_, err = client.New(srv.URL).Templates(t.Context())
	require.NoError(t, err)
	require.Empty(t, <-got, "no token, no header")
}

func TestCreateTaskRetries(t *testing.T) {
	t.Parallel()

	// flaky passes requests to the API, but loses the answers to the first
	// few: the task is created, the client never hears of it.
	flaky := func(t *testing.T, lose int, status int) (*apitest.Backend, *httptest.Server, *[]string) {
		backend := apitest.NewBackend(apitest.Template("billing", "invoice", "1.0.0", "fetch"))
		api := apitest.Server(t, backend)
		var keys []string
		var mu sync.Mutex
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var req client.TaskRequest
			_ = json.Unmarshal(body, &req)
			mu.Lock()
			keys = append(keys, req.IdempotencyKey)
			n := len(keys)
			mu.Unlock()
			resp, err := http.Post(api.URL+r.URL.Path, "application/json", bytes.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			switch {
			case n > lose:
				w.WriteHeader(resp.StatusCode)
				_, _ = w.Write(out)
			case status != 0:
				http.Error(w, "overloaded", status)
			default:
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = conn.Close() // the answer is lost on the way
				}
			}
		}))
		t.Cleanup(srv.Close)
		return backend, srv, &keys
	}

	t.Run("LostAnswersCreateOneTask", func(t *testing.T) {
		t.Parallel()
		backend, srv, keys := flaky(t, 2, 0)
		req, err := client.NewTaskRequest("billing", "invoice", "", nil)
		require.NoError(t, err)
		task, err := client.New(srv.URL).CreateTask(t.Context(), req)
		require.NoError(t, err)
		require.Len(t, *keys, 3)
		require.NotEmpty(t, (*keys)[0], "a key is set when the caller gives none")
		require.Equal(t, (*keys)[0], (*keys)[1])
		require.Equal(t, (*keys)[0], (*keys)[2])
		key, err := uuid.Parse((*keys)[0])
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), key.Version())
		tasks, err := backend.ListTasksByCorrelation(t.Context(), *req.CorrelationID)
		require.NoError(t, err)
		require.Len(t, tasks, 1)
		require.Equal(t, tasks[0].TaskUUID, task.TaskUUID)
	})

	t.Run("5xxIsRetriedWithTheCallersKey", func(t *testing.T) {
		t.Parallel()
		_, srv, keys := flaky(t, 1, http.StatusServiceUnavailable)
		req := client.TaskRequest{Namespace: "billing", Name: "invoice", IdempotencyKey: "mine"}
		_, err := client.New(srv.URL).CreateTask(t.Context(), req)
		require.NoError(t, err)
		require.Equal(t, []string{"mine", "mine"}, *keys)
	})

	t.Run("GivesUpAfterTheRetries", func(t *testing.T) {
		t.Parallel()
		_, srv, keys := flaky(t, 100, http.StatusServiceUnavailable)
		_, err := client.New(srv.URL, client.WithCreateRetries(1)).CreateTask(t.Context(), client.TaskRequest{Namespace: "billing", Name: "invoice"})
		requireAPIError(t, err, http.StatusServiceUnavailable, "service_unavailable", "")
		require.Len(t, *keys, 2)
	})

	t.Run("4xxIsFinal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.CreateTask(t.Context(), client.TaskRequest{Namespace: "billing", Name: "refund"})
		requireAPIError(t, err, http.StatusNotFound, client.CodeUnknownTemplate, "name")
		require.Len(t, b.backend.CreateRequests(), 1)
	})
}

// rejecting answers the first `reject` requests with answer and forwards the
// rest to an API backed by apitest, recording when each request arrived.
func rejecting(t *testing.T, reject int, answer func(w http.ResponseWriter, arrived time.Time)) (*httptest.Server, func() []time.Time) {
	t.Helper()
	backend := apitest.NewBackend(apitest.Template("billing", "invoice", "1.0.0", "fetch"))
	api := apitest.Server(t, backend)
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		mu.Lock()
		arrivals = append(arrivals, now)
		n := len(arrivals)
		mu.Unlock()
		if n <= reject {
			answer(w, now)
			return
		}
		resp, err := http.DefaultClient.Do(mustProxyRequest(t, r, api.URL))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), arrivals...)
	}
}

func mustProxyRequest(t *testing.T, r *http.Request, base string) *http.Request {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
	if err != nil {
		t.Errorf("building proxied request: %v", err)
	}
	req.Header = r.Header.Clone()
	return req
}

// refusing answers status with an error body and a Retry-After, as the API
// does while its database is down (503 unavailable).
func refusing(status int, code string, retryAfter func(arrived time.Time) string) func(http.ResponseWriter, time.Time) {
	return func(w http.ResponseWriter, arrived time.Time) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", retryAfter(arrived))
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(client.ErrorBody{Error: &client.APIError{Code: code, Message: "try again later"}})
	}
}

func seconds(s string) func(time.Time) string { return func(time.Time) string { return s } }

func TestCreateTaskHonoursRetryAfter(t *testing.T) {
	t.Parallel()

	newRequest := func(t *testing.T) client.TaskRequest {
		req, err := client.NewTaskRequest("billing", "invoice", "", nil)
		require.NoError(t, err)
		return req
	}

	// The client's own first pause is 100 ms, so a second request that
	// arrives a full advertised delay after the first shows the header was
	// read; the server's clock measures it, as the header is meant for it.
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(fmt.Sprintf("DelaySeconds%d", status), func(t *testing.T) {
			t.Parallel()
			srv, arrivals := rejecting(t, 1, refusing(status, "busy", seconds("1")))
			task, err := client.New(srv.URL).CreateTask(t.Context(), newRequest(t))
			require.NoError(t, err)
			require.Equal(t, "pending", task.State)
			got := arrivals()
			require.Len(t, got, 2)
			require.GreaterOrEqual(t, got[1].Sub(got[0]), time.Second, "retried before Retry-After: 1 had passed")
		})
	}

	t.Run("HTTPDate", func(t *testing.T) {
		t.Parallel()
		var advertised time.Time
		srv, arrivals := rejecting(t, 1, refusing(http.StatusServiceUnavailable, client.CodeUnavailable, func(arrived time.Time) string {
			// HTTP-dates have whole seconds: this is 1–2 s after arrival.
			advertised = arrived.Add(2 * time.Second).Truncate(time.Second)
			return advertised.UTC().Format(http.TimeFormat)
		}))
		_, err := client.New(srv.URL).CreateTask(t.Context(), newRequest(t))
		require.NoError(t, err)
		got := arrivals()
		require.Len(t, got, 2)
		require.False(t, got[1].Before(advertised), "retried at %s, before the advertised %s", got[1], advertised)
	})

	t.Run("CutToMaxRetryAfter", func(t *testing.T) {
		t.Parallel()
		srv, arrivals := rejecting(t, 1, refusing(http.StatusServiceUnavailable, client.CodeUnavailable, seconds("3600")))
		// Honouring the hour would outlast the test's deadline.
		_, err := client.New(srv.URL, client.WithMaxRetryAfter(50*time.Millisecond)).CreateTask(t.Context(), newRequest(t))
		require.NoError(t, err)
		require.Len(t, arrivals(), 2)
	})

	t.Run("WaitPastDeadlineGivesUpAtOnce", func(t *testing.T) {
		t.Parallel()
		srv, arrivals := rejecting(t, 1, refusing(http.StatusServiceUnavailable, client.CodeUnavailable, seconds("5")))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := client.New(srv.URL).CreateTask(ctx, newRequest(t))
		requireAPIError(t, err, http.StatusServiceUnavailable, client.CodeUnavailable, "")
		var apiErr *client.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 5*time.Second, apiErr.RetryAfter)
		require.NoError(t, ctx.Err(), "the client slept until the deadline instead of returning the 503")
		require.Len(t, arrivals(), 1)
	})

	t.Run("MalformedHeaderKeepsOwnBackoff", func(t *testing.T) {
		t.Parallel()
		srv, arrivals := rejecting(t, 2, refusing(http.StatusServiceUnavailable, client.CodeUnavailable, seconds("soon")))
		_, err := client.New(srv.URL).CreateTask(t.Context(), newRequest(t))
		require.NoError(t, err)
		require.Len(t, arrivals(), 3)
	})

	t.Run("OtherStatusesStayFinal", func(t *testing.T) {
		t.Parallel()
		srv, arrivals := rejecting(t, 1, refusing(http.StatusForbidden, "insufficient_scope", seconds("1")))
		_, err := client.New(srv.URL).CreateTask(t.Context(), newRequest(t))
		requireAPIError(t, err, http.StatusForbidden, "insufficient_scope", "")
		require.Len(t, arrivals(), 1)
	})
}

func TestWaitTaskHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	taskUUID := uuid.New()
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		n := len(arrivals)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch n {
		case 1:
			_ = json.NewEncoder(w).Encode(client.Task{TaskUUID: taskUUID, State: "in_progress"})
		case 2:
			// More than WaitTask's own 1 s pause, so honouring it shows.
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(client.ErrorBody{Error: &client.APIError{Code: client.CodeTooManyWaiters, Message: "busy"}})
		default:
			_ = json.NewEncoder(w).Encode(client.Task{TaskUUID: taskUUID, State: "complete"})
		}
	}))
	t.Cleanup(srv.Close)
	task, err := client.New(srv.URL).WaitTask(t.Context(), taskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", task.State)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, arrivals, 3)
	require.GreaterOrEqual(t, arrivals[2].Sub(arrivals[1]), 2*time.Second, "asked again before Retry-After: 2 had passed")
}
