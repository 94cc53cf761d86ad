// Package client is the Go client of the Tasker REST API, and the wire types
// the API speaks.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

const (
	// defaultTimeout bounds one request when the caller brings no http.Client,
	// so a hung server cannot hang a caller that passed context.Background().
	defaultTimeout = 30 * time.Second
	// defaultPoll is WaitForTask's interval when the caller gives none.
	defaultPoll = 500 * time.Millisecond
	// maxErrorBody bounds how much of a non-JSON error answer is kept for the message.
	maxErrorBody = 4 << 10
	// defaultCreateRetries is how often CreateTask sends a request again
	// after a transport error or a 5xx or 429 answer.
	defaultCreateRetries = 3
	// retryBackoff is the pause before the first retry; it doubles each time.
	retryBackoff    = 100 * time.Millisecond
	maxRetryBackoff = 2 * time.Second
	// defaultMaxRetryAfter bounds the wait a server's Retry-After can ask
	// for. It is above the server's own values (5 s while its database is
	// down, 1 s for too many waiters), so those are honoured in full, and
	// low enough that a misconfigured proxy asking for an hour cannot stall
	// a caller that has no deadline.
	defaultMaxRetryAfter = 10 * time.Second
)

// Client calls one Tasker server. It is safe for concurrent use.
type Client struct {
	baseURL       string
	http          *http.Client
	token         string
	createRetries int
	maxRetryAfter time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through h (for
// transports with TLS, tracing or custom timeouts).
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) { c.http = h }
}

// TokenEnv is the environment variable the CLI (and callers who choose to)
// read the API token from.
const TokenEnv = "TASKER_API_TOKEN"

// WithToken sends token as a bearer token (Authorization: Bearer token) on
// every request; empty sends none.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithCreateRetries sets how many times CreateTask sends its request again
// after a transport error or a 5xx or 429 answer (default 3; 0 turns retries
// off). Retries are safe because every request carries an idempotency key.
func WithCreateRetries(n int) Option {
	return func(c *Client) { c.createRetries = max(n, 0) }
}

// WithMaxRetryAfter sets the longest a retry waits when the answer's
// Retry-After asks for a wait (default 10 s): a longer Retry-After is cut
// to d. d ≤ 0 ignores Retry-After, so retries keep the client's own backoff.
func WithMaxRetryAfter(d time.Duration) Option {
	return func(c *Client) { c.maxRetryAfter = max(d, 0) }
}

// New returns a client of the server at baseURL (e.g. "http://127.0.0.1:8080").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		baseURL:       strings.TrimRight(baseURL, "/"),
		http:          &http.Client{Timeout: defaultTimeout},
		createRetries: defaultCreateRetries,
		maxRetryAfter: defaultMaxRetryAfter,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// CreateTask submits req and returns the created task. The server makes a
// correlation ID when req carries none; NewTaskRequest sets one up front so
// the caller knows it before the call returns.
//
// A request without an IdempotencyKey gets a fresh UUIDv7 one, so that the
// request can be sent again after a transport error or a 5xx or 429 answer
// (see WithCreateRetries) without risking a second task: a lost answer to a
// request that did create the task is answered by the retry with that task.
// Retries back off from 100 ms, doubling up to 2 s, except that an answer
// with Retry-After (a 503 while the server's database is down, a 429) is
// retried after the wait it names, up to WithMaxRetryAfter. When that wait
// would outlast ctx's deadline, CreateTask returns the answer's error at
// once instead of sleeping until ctx ends.
func (c *Client) CreateTask(ctx context.Context, req TaskRequest) (*Task, error) {
	if req.IdempotencyKey == "" {
		key, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("generating idempotency key: %w", err)
		}
		req.IdempotencyKey = key.String()
	}
	var task Task
	if err := c.withCreateRetries(ctx, func() error { return c.do(ctx, http.MethodPost, "/v1/tasks", req, &task) }); err != nil {
		return nil, err
	}
	return &task, nil
}

// CreateTasks submits reqs (at most MaxTaskBatch) as one batch
// (POST /v1/tasks/batch) and returns the tasks in request order. The server
// creates all of them in one transaction or, when any request is refused,
// none: the *APIError's Items then name every refused request by index.
//
// As with CreateTask, a request without an IdempotencyKey gets a fresh
// UUIDv7 one, so the whole batch can be sent again after a transport error
// or a 5xx or 429 answer (after its Retry-After, as CreateTask does) without
// creating any task twice.
func (c *Client) CreateTasks(ctx context.Context, reqs []TaskRequest) ([]Task, error) {
	body := TaskBatchRequest{Tasks: make([]TaskRequest, len(reqs))}
	for i, req := range reqs {
		if req.IdempotencyKey == "" {
			key, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("generating idempotency key: %w", err)
			}
			req.IdempotencyKey = key.String()
		}
		body.Tasks[i] = req
	}
	var out TaskBatch
	if err := c.withCreateRetries(ctx, func() error { return c.do(ctx, http.MethodPost, "/v1/tasks/batch", body, &out) }); err != nil {
		return nil, err
	}
	return out.Tasks, nil
}

// withCreateRetries runs send until it succeeds, fails for good, or the
// client's create retries are spent, pausing in between with backoff or as
// long as the answer's Retry-After asks (retryWait).
func (c *Client) withCreateRetries(ctx context.Context, send func() error) error {
	pause := retryBackoff
	for attempt := 0; ; attempt++ {
		err := send()
		if err == nil {
			return nil
		}
		if attempt >= c.createRetries || !retryable(err) || ctx.Err() != nil {
			return err
		}
		if !sleep(ctx, c.retryWait(err, pause)) {
			return err
		}
		pause = min(2*pause, maxRetryBackoff)
	}
}

// retryWait is how long to wait before trying again after err: what the
// answer's Retry-After asked for, up to maxRetryAfter, or else fallback.
func (c *Client) retryWait(err error, fallback time.Duration) time.Duration {
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 && c.maxRetryAfter > 0 {
		return min(apiErr.RetryAfter, c.maxRetryAfter)
	}
	return fallback
}

// sleep waits d, or less when ctx ends first, and reports whether the wait
// ran its course. A wait that would outlast ctx's deadline is not started:
// the caller learns at once that there is no time for another try.
func sleep(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryable reports whether a failed request may have failed for reasons
// that a second try can get past: the server erred (5xx) or asked to be
// called less often (429), or the connection did (no answer, or a cut-off
// one). Other 4xx answers are final.
func retryable(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status >= 500 || apiErr.Status == http.StatusTooManyRequests
	}
	var urlErr *url.Error
	return errors.As(err, &urlErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errReadingBody)
}

// parseRetryAfter reads a Retry-After header (RFC 9110 section 10.2.3):
// delay-seconds or an HTTP-date, the latter measured from now (a date in
// the past means no wait). It returns 0, no wait asked for, when the header
// is absent or malformed.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(h); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}

// errReadingBody marks an answer whose body was cut off.
var errReadingBody = errors.New("reading response body")

// GetTask returns the task with the given UUID.
func (c *Client) GetTask(ctx context.Context, taskUUID uuid.UUID) (*Task, error) {
	var task Task
	if err := c.do(ctx, http.MethodGet, "/v1/tasks/"+taskUUID.String(), nil, &task); err != nil {
		return nil, err
	}
	return &task, nil
}

// ListSteps returns the workflow steps of a task.
func (c *Client) ListSteps(ctx context.Context, taskUUID uuid.UUID) ([]Step, error) {
	var steps []Step
	if err := c.do(ctx, http.MethodGet, "/v1/tasks/"+taskUUID.String()+"/workflow_steps", nil, &steps); err != nil {
		return nil, err
	}
	return steps, nil
}

// ListTasks returns one page of the tasks f selects, newest first; pass the
// list's NextCursor as f.Cursor for the next page.
func (c *Client) ListTasks(ctx context.Context, f TaskFilter) (*TaskList, error) {
	var list TaskList
	path := "/v1/tasks"
	if q := f.Query().Encode(); q != "" {
		path += "?" + q
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// listAll reads every page of f.
func (c *Client) listAll(ctx context.Context, f TaskFilter) ([]Task, error) {
	f.Limit = MaxTaskListLimit
	var out []Task
	for {
		list, err := c.ListTasks(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, list.Tasks...)
		if list.NextCursor == "" {
			return out, nil
		}
		f.Cursor = list.NextCursor
	}
}

// ListTasksByCorrelation returns the tasks carrying a correlation ID, newest first.
func (c *Client) ListTasksByCorrelation(ctx context.Context, correlationID uuid.UUID) ([]Task, error) {
	return c.listAll(ctx, TaskFilter{CorrelationID: &correlationID})
}

// ListChildTasks returns the tasks whose parent correlation ID is
// parentCorrelationID, newest first.
func (c *Client) ListChildTasks(ctx context.Context, parentCorrelationID uuid.UUID) ([]Task, error) {
	return c.listAll(ctx, TaskFilter{ParentCorrelationID: &parentCorrelationID})
}

// CancelTask cancels a task that has not finished and returns it: steps not
// yet run never run, running ones are asked to stop, and late results are
// ignored. Cancelling a cancelled task changes nothing; cancelling a finished
// one is an *APIError with status 409 and code state_conflict.
func (c *Client) CancelTask(ctx context.Context, taskUUID uuid.UUID, req CancelRequest) (*Task, error) {
	return c.operate(ctx, "/v1/tasks/"+taskUUID.String()+"/cancel", req)
}

// RetryTask runs a task in error again from its failed steps (completed steps
// keep their results) and returns it.
func (c *Client) RetryTask(ctx context.Context, taskUUID uuid.UUID, req RetryRequest) (*Task, error) {
	return c.operate(ctx, "/v1/tasks/"+taskUUID.String()+"/retry", req)
}

// ResolveStep marks a failed step of a task (by name or UUID) resolved
// manually with req.Result as its result, so the steps after it run, and
// returns the task.
func (c *Client) ResolveStep(ctx context.Context, taskUUID uuid.UUID, step string, req ResolveRequest) (*Task, error) {
	return c.operate(ctx, "/v1/tasks/"+taskUUID.String()+"/steps/"+url.PathEscape(step)+"/resolve", req)
}

func (c *Client) operate(ctx context.Context, path string, req any) (*Task, error) {
	var task Task
	if err := c.do(ctx, http.MethodPost, path, req, &task); err != nil {
		return nil, err
	}
	return &task, nil
}

// CreateSchedule creates a cron schedule that creates req.Task each time
// req.Cron comes due.
func (c *Client) CreateSchedule(ctx context.Context, req ScheduleRequest) (*Schedule, error) {
	var sc Schedule
	if err := c.do(ctx, http.MethodPost, "/v1/schedules", req, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}

// ListSchedules returns every schedule, by name.
func (c *Client) ListSchedules(ctx context.Context) ([]Schedule, error) {
	var list ScheduleList
	if err := c.do(ctx, http.MethodGet, "/v1/schedules", nil, &list); err != nil {
		return nil, err
	}
	return list.Schedules, nil
}

// DeleteSchedule deletes the schedule named name.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/schedules/"+url.PathEscape(name), nil, nil)
}

// Templates returns the registered task templates.
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	var list TemplateList
	if err := c.do(ctx, http.MethodGet, "/v1/templates", nil, &list); err != nil {
		return nil, err
	}
	return list.Templates, nil
}

// Queues returns every queue's depth and the age of its oldest claimable
// message.
func (c *Client) Queues(ctx context.Context) (*QueueList, error) {
	var list QueueList
	if err := c.do(ctx, http.MethodGet, "/v1/queues", nil, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// Workers returns the live workers and every registered namespace with how
// many of them serve it.
func (c *Client) Workers(ctx context.Context) (*WorkerList, error) {
	var list WorkerList
	if err := c.do(ctx, http.MethodGet, "/v1/workers", nil, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// Health returns the server's health. An unhealthy server answers 503 with a
// Health body; that comes back as the Health together with an *APIError, so
// callers see both why and that it failed.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/health", nil, &h)
	var apiErr *APIError
	if err != nil && !(errors.As(err, &apiErr) && h.Status != "") {
		return nil, err
	}
	return &h, err
}

// longPollWait is how long one GET ?wait= of WaitTask asks the server to
// hold, below defaultTimeout so the client's own timeout does not cut it.
const longPollWait = 25 * time.Second

// WaitTask waits until the task is terminal and returns it, without
// polling: each request asks the server to answer once the task finishes
// (GET /v1/tasks/{uuid}?wait=), and is repeated until it does or ctx ends.
// When ctx ends first it returns the last task seen (nil if none) with an
// error wrapping ctx.Err(). A server at its limit of waiting requests (503
// too_many_waiters) is asked again after its Retry-After (a second when it
// gives none), up to WithMaxRetryAfter.
func (c *Client) WaitTask(ctx context.Context, taskUUID uuid.UUID) (*Task, error) {
	var last *Task
	for first := true; ; first = false {
		// The first read does not wait, so the state is known however soon
		// ctx ends.
		path := "/v1/tasks/" + taskUUID.String()
		if !first {
			wait := longPollWait
			if dl, ok := ctx.Deadline(); ok {
				// Leave the answer time to arrive before ctx ends.
				wait = min(wait, max(time.Until(dl)*3/4, 0))
			}
			path += "?" + url.Values{"wait": {wait.String()}}.Encode()
		}
		var task Task
		err := c.do(ctx, http.MethodGet, path, nil, &task)
		var apiErr *APIError
		switch {
		case err == nil:
			last = &task
			if task.Terminal() {
				return &task, nil
			}
		case ctx.Err() != nil:
		case errors.As(err, &apiErr) && apiErr.Code == CodeTooManyWaiters:
			t := time.NewTimer(c.retryWait(err, time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		default:
			return last, fmt.Errorf("waiting for task %s: %w", taskUUID, err)
		}
		if ctx.Err() != nil {
			return last, fmt.Errorf("waiting for task %s: %w", taskUUID, ctx.Err())
		}
	}
}

// WaitForTask polls GetTask every poll (500 ms when poll ≤ 0) until the task is
// terminal or ctx is done. WaitTask waits the same way without polling, on
// servers that offer ?wait=. When ctx ends first it returns the last task seen
// (nil if none) with an error wrapping ctx.Err(), so a caller can still report
// how far the task got. Any other error ends the wait at once.
func (c *Client) WaitForTask(ctx context.Context, taskUUID uuid.UUID, poll time.Duration) (*Task, error) {
	if poll <= 0 {
		poll = defaultPoll
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	var last *Task
	for {
		task, err := c.GetTask(ctx, taskUUID)
		switch {
		case err == nil:
			last = task
			if task.Terminal() {
				return task, nil
			}
		case ctx.Err() != nil:
			// The request failed because the wait is over, not because the server did.
		default:
			return last, fmt.Errorf("waiting for task %s: %w", taskUUID, err)
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("waiting for task %s: %w", taskUUID, ctx.Err())
		case <-ticker.C:
		}
	}
}

// do sends one request. A non-2xx answer becomes an *APIError, returned
// unwrapped so errors.As and the message read the same; out is still filled
// when such an answer's body decodes into it (GET /health's 503 does).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return fmt.Errorf("building %s %s request: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading %s %s response: %w: %w", method, path, errReadingBody, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeAPIError(resp, raw, out)
	}
	if out == nil {
		return nil // 204 No Content, or an answer the caller does not read
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding %s %s response: %w", method, path, err)
	}
	return nil
}

// decodeAPIError turns an error answer into an *APIError. A body that is not
// the API's error envelope (a proxy's HTML page, say) still yields one, with
// the HTTP status as the code, so callers handle one error type.
func decodeAPIError(resp *http.Response, raw []byte, out any) *APIError {
	retryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	var envelope ErrorBody
	if err := json.Unmarshal(raw, &envelope); err == nil && envelope.Error != nil && envelope.Error.Code != "" {
		envelope.Error.Status = resp.StatusCode
		envelope.Error.RetryAfter = retryAfter
		return envelope.Error
	}
	// Bodies such as Health's are meaningful even on error; keep them.
	if out != nil && json.Valid(raw) {
		_ = json.Unmarshal(raw, out)
	}
	msg := strings.TrimSpace(string(raw[:min(len(raw), maxErrorBody)]))
	if h, ok := out.(*Health); ok && h.Error != "" {
		msg = h.Error
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &APIError{
		Status:     resp.StatusCode,
		Code:       strings.ReplaceAll(strings.ToLower(http.StatusText(resp.StatusCode)), " ", "_"),
		Message:    msg,
		RetryAfter: retryAfter,
	}
}
