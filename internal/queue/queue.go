// Package queue is Tasker's PostgreSQL queue with PGMQ semantics: send (with
// a NOTIFY delivered at commit), read with a visibility timeout, archive,
// delete and depth; plus the LISTEN side that wakes consumers.
package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/db"
)

// The orchestration queues.
const (
	TaskRequests = "orchestration_task_requests"
	StepResults  = "orchestration_step_results"
)

// TaskTerminalChannel is the NOTIFY channel on which orchestration announces
// a task that reached a terminal state; the payload is its UUID.
const TaskTerminalChannel = "tasker_task_terminal"

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
var namespaceRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// ValidateName reports whether name can be a queue (and NOTIFY channel) name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid queue name %q: must match %s", name, nameRE)
	}
	return nil
}

// ValidateNamespace reports whether ns can name a worker queue.
func ValidateNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("invalid namespace %q: must match %s", ns, namespaceRE)
	}
	return nil
}

// WorkerQueue returns the queue that carries steps of namespace ns.
func WorkerQueue(ns string) (string, error) {
	if err := ValidateNamespace(ns); err != nil {
		return "", err
	}
	return "worker_" + ns + "_queue", nil
}

// Message is one queue message.
type Message struct {
	ID         int64
	ReadCount  int
	EnqueuedAt time.Time
	VT         time.Time
	Body       json.RawMessage
	Headers    map[string]string
}

// Metrics describes one queue at one instant.
type Metrics struct {
	Queue     string
	Depth     int64
	Claimable int64
	// OldestClaimableAge is how long the oldest message that a consumer could
	// take right now has waited; zero when none is claimable.
	OldestClaimableAge time.Duration
}

// Client runs queue operations on any Querier (pool or transaction).
type Client struct {
	in db.Instr
}

// NewClient returns a client reporting calls to obs (nil: none).
func NewClient(obs db.Observer) *Client { return &Client{in: db.NewInstr(obs)} }

func ms(d time.Duration) int32 { return int32(d / time.Millisecond) }

// Create makes queue name if it does not exist.
func (c *Client) Create(ctx context.Context, q db.Querier, name string) (err error) {
	if err := ValidateName(name); err != nil {
		return err
	}
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_create", Queue: name, Messaging: ""})
	defer func() { sc.End(err) }()
	if _, err = q.Exec(ctx, "SELECT tasker.queue_create($1)", name); err != nil {
		return fmt.Errorf("creating queue %s: %w", name, err)
	}
	return nil
}

// Send puts body (JSON-encoded) on queue; consumers are notified when the
// surrounding transaction commits.
func (c *Client) Send(ctx context.Context, q db.Querier, queue string, body any, headers map[string]string, delay time.Duration) (id int64, err error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("encoding message for %s: %w", queue, err)
	}
	h, err := json.Marshal(orEmpty(headers))
	if err != nil {
		return 0, fmt.Errorf("encoding headers for %s: %w", queue, err)
	}
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_send", Queue: queue, Messaging: "send"})
	defer func() { sc.End(err) }()
	if err = q.QueryRow(ctx, "SELECT tasker.queue_send($1, $2, $3, $4)", queue, raw, h, ms(delay)).Scan(&id); err != nil {
		return 0, fmt.Errorf("sending to %s: %w", queue, err)
	}
	return id, nil
}

// SendBatch puts every body on queue in one statement.
func (c *Client) SendBatch(ctx context.Context, q db.Querier, queue string, bodies []any, headers map[string]string) (ids []int64, err error) {
	raws := make([][]byte, len(bodies))
	for i, b := range bodies {
		if raws[i], err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("encoding message for %s: %w", queue, err)
		}
	}
	h, err := json.Marshal(orEmpty(headers))
	if err != nil {
		return nil, fmt.Errorf("encoding headers for %s: %w", queue, err)
	}
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_send_batch", Queue: queue, Messaging: "send"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, "SELECT tasker.queue_send_batch($1, $2::jsonb[], $3)", queue, raws, h)
	if err != nil {
		return nil, fmt.Errorf("sending batch to %s: %w", queue, err)
	}
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("sending batch to %s: %w", queue, err)
	}
	return ids, nil
}

// Read takes up to qty visible messages at least minAge old and hides them for vt.
func (c *Client) Read(ctx context.Context, q db.Querier, queue string, vt time.Duration, qty int, minAge time.Duration) (msgs []Message, err error) {
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_read", Queue: queue, Messaging: "receive"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, "SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM tasker.queue_read($1, $2, $3, $4)",
		queue, ms(vt), qty, ms(minAge))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", queue, err)
	}
	msgs, err = pgx.CollectRows(rows, scanMessage)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", queue, err)
	}
	return msgs, nil
}

// ReadMessage takes message id if it is visible; nil when it is not.
func (c *Client) ReadMessage(ctx context.Context, q db.Querier, queue string, id int64, vt time.Duration) (m *Message, err error) {
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_read_message", Queue: queue, Messaging: "receive"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, "SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM tasker.queue_read_message($1, $2, $3)",
		queue, id, ms(vt))
	if err != nil {
		return nil, fmt.Errorf("reading %s message %d: %w", queue, id, err)
	}
	msgs, err := pgx.CollectRows(rows, scanMessage)
	if err != nil {
		return nil, fmt.Errorf("reading %s message %d: %w", queue, id, err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	return &msgs[0], nil
}

// Archive acknowledges message id: it moves to the archive. False when it was not there.
func (c *Client) Archive(ctx context.Context, q db.Querier, queue string, id int64) (ok bool, err error) {
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_archive", Queue: queue, Messaging: "settle"})
	defer func() { sc.End(err) }()
	if err = q.QueryRow(ctx, "SELECT tasker.queue_archive($1, $2)", queue, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("archiving %s message %d: %w", queue, id, err)
	}
	return ok, nil
}

// Delete drops message id without archiving it.
func (c *Client) Delete(ctx context.Context, q db.Querier, queue string, id int64) (ok bool, err error) {
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_delete", Queue: queue, Messaging: "settle"})
	defer func() { sc.End(err) }()
	if err = q.QueryRow(ctx, "SELECT tasker.queue_delete($1, $2)", queue, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("deleting %s message %d: %w", queue, id, err)
	}
	return ok, nil
}

// SetVT makes message id visible again after vt (0: now).
func (c *Client) SetVT(ctx context.Context, q db.Querier, queue string, id int64, vt time.Duration) (ok bool, err error) {
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_set_vt", Queue: queue, Messaging: ""})
	defer func() { sc.End(err) }()
	if err = q.QueryRow(ctx, "SELECT tasker.queue_set_vt($1, $2, $3)", queue, id, ms(vt)).Scan(&ok); err != nil {
		return false, fmt.Errorf("setting visibility of %s message %d: %w", queue, id, err)
	}
	return ok, nil
}

// Wake is one NOTIFY: a channel (a queue's name, or another channel) and
// its payload.
type Wake struct {
	Channel string
	Payload string
}

// MessageWake is the wake-up for message id of queue sent without a NOTIFY.
// The payload format matches queue_notify_payload: "<id>" or "<id> <headers
// JSON>" (headers too large for a payload are left for the consumer to read
// from the message).
func MessageWake(queue string, id int64, headers map[string]string) Wake {
	payload := strconv.FormatInt(id, 10)
	if len(headers) > 0 {
		if b, err := json.Marshal(headers); err == nil && len(b) <= 7000 {
			payload += " " + string(b)
		}
	}
	return Wake{Channel: queue, Payload: payload}
}

// Notify wakes queue's consumers for messages ids that were sent without a
// NOTIFY (after their transaction committed). q must not be inside a
// transaction: Notify commits asynchronously.
func (c *Client) Notify(ctx context.Context, q db.Querier, queue string, ids []int64, headers map[string]string) error {
	wakes := make([]Wake, len(ids))
	for i, id := range ids {
		wakes[i] = MessageWake(queue, id, headers)
	}
	return c.NotifyAll(ctx, q, wakes)
}

// NotifyAll sends every wake-up in one statement: a batch's wake-ups cost
// one round trip and one (asynchronous) commit. Given a transaction, they
// are delivered when it commits.
func (c *Client) NotifyAll(ctx context.Context, q db.Querier, wakes []Wake) (err error) {
	if len(wakes) == 0 {
		return nil
	}
	channels, payloads := make([]string, len(wakes)), make([]string, len(wakes))
	common := wakes[0].Channel
	for i, w := range wakes {
		channels[i], payloads[i] = w.Channel, w.Payload
		if w.Channel != common {
			common = ""
		}
	}
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "pg_notify", Queue: common})
	defer func() { sc.End(err) }()
	// NOTIFY gives the transaction an ID, so its commit would wait for a WAL
	// flush while holding the cluster-wide notify lock. A transaction that
	// only notifies has nothing to lose in a crash: commit it asynchronously.
	// A caller's transaction keeps its own durability.
	async := true
	if _, inTx := q.(pgx.Tx); inTx {
		async = false
	}
	if _, err = q.Exec(ctx, `SELECT CASE WHEN $3 THEN set_config('synchronous_commit', 'off', true) END, pg_notify(c, p)
		FROM unnest($1::text[], $2::text[]) AS w(c, p)`, channels, payloads, async); err != nil {
		return fmt.Errorf("notifying %s: %w", cmp.Or(common, "queues"), err)
	}
	return nil
}

// Metrics reports depth and the age of the oldest claimable message of queue.
func (c *Client) Metrics(ctx context.Context, q db.Querier, queue string) (m Metrics, err error) {
	ctx, sc := c.in.Begin(ctx, db.Call{Function: "queue_metrics", Queue: queue, Messaging: ""})
	defer func() { sc.End(err) }()
	var age float64
	if err = q.QueryRow(ctx, "SELECT depth, claimable, oldest_claimable_age_seconds FROM tasker.queue_metrics($1)", queue).
		Scan(&m.Depth, &m.Claimable, &age); err != nil {
		return m, fmt.Errorf("reading metrics of %s: %w", queue, err)
	}
	m.Queue = queue
	m.OldestClaimableAge = time.Duration(age * float64(time.Second))
	return m, nil
}

func scanMessage(row pgx.CollectableRow) (Message, error) {
	var m Message
	var headers []byte
	if err := row.Scan(&m.ID, &m.ReadCount, &m.EnqueuedAt, &m.VT, &m.Body, &headers); err != nil {
		return m, err
	}
	if err := DecodeHeaders(headers, &m.Headers); err != nil {
		return m, err
	}
	return m, nil
}

// DecodeHeaders decodes a headers JSON object; values that are not strings are dropped.
func DecodeHeaders(raw []byte, out *map[string]string) error {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decoding message headers: %w", err)
	}
	h := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			h[k] = s
		}
	}
	*out = h
	return nil
}

func orEmpty(h map[string]string) map[string]string {
	if h == nil {
		return map[string]string{}
	}
	return h
}
