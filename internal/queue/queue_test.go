package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/queue"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// waitTimeout bounds every wait for something that must happen.
const waitTimeout = 10 * time.Second

func setup(t *testing.T, queues ...string) (*pgxpool.Pool, *queue.Client) {
	t.Helper()
	pool := dbtest.NewPool(t)
	c := queue.NewClient(nil)
	for _, q := range queues {
		require.NoError(t, c.Create(context.Background(), pool, q))
	}
	return pool, c
}

// noSQL is a Querier that fails the test if any SQL reaches it.
type noSQL struct{ t *testing.T }

func (n noSQL) Exec(_ context.Context, sql string, _ ...any) (pgconn.CommandTag, error) {
	n.t.Errorf("unexpected SQL: %s", sql)
	return pgconn.CommandTag{}, errors.New("no SQL expected")
}

func (n noSQL) Query(_ context.Context, sql string, _ ...any) (pgx.Rows, error) {
	n.t.Errorf("unexpected SQL: %s", sql)
	return nil, errors.New("no SQL expected")
}

func (n noSQL) QueryRow(_ context.Context, sql string, _ ...any) pgx.Row {
	n.t.Errorf("unexpected SQL: %s", sql)
	return errRow{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errors.New("no SQL expected") }

func queueExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM tasker.queues WHERE queue_name = $1)", name).Scan(&ok))
	return ok
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string, id int64) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM tasker."+table+" WHERE msg_id = $1", id).Scan(&n))
	return n
}

func TestCreateValidatesNames(t *testing.T) {
	t.Parallel()
	pool, c := setup(t)
	ctx := context.Background()
	for _, bad := range []string{"Bad-Name", "1abc", "a;drop", "", "_x", "a b", "Upper", "a-b", strings.Repeat("a", 64), "queue\n"} {
		err := c.Create(ctx, noSQL{t}, bad)
		require.Error(t, err, "%q", bad)
		require.Contains(t, err.Error(), "invalid queue name")
		require.Error(t, queue.ValidateName(bad), "%q", bad)
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM tasker.queues").Scan(&n))
	require.Zero(t, n)

	for _, good := range []string{"a", "jobs", "worker_payments_queue", "q1_2", strings.Repeat("a", 63), queue.TaskRequests, queue.StepResults} {
		require.NoError(t, queue.ValidateName(good), good)
		require.NoError(t, c.Create(ctx, pool, good), good)
		require.NoError(t, c.Create(ctx, pool, good), "creating %s again is a no-op", good)
		require.True(t, queueExists(t, pool, good), good)
	}
}

func TestWorkerQueueAndValidateNamespace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ns, want string
	}{
		{"payments", "worker_payments_queue"},
		{"a", "worker_a_queue"},
		{"ns_2", "worker_ns_2_queue"},
		{strings.Repeat("n", 48), "worker_" + strings.Repeat("n", 48) + "_queue"},
	} {
		require.NoError(t, queue.ValidateNamespace(tc.ns), tc.ns)
		got, err := queue.WorkerQueue(tc.ns)
		require.NoError(t, err, tc.ns)
		require.Equal(t, tc.want, got)
		require.NoError(t, queue.ValidateName(got), "the worker queue of %q is a valid queue name", tc.ns)
	}
	for _, bad := range []string{"", "Payments", "1x", "a-b", "a b", "_a", "ns;drop", strings.Repeat("n", 49)} {
		require.Error(t, queue.ValidateNamespace(bad), "%q", bad)
		got, err := queue.WorkerQueue(bad)
		require.Error(t, err, "%q", bad)
		require.Empty(t, got)
	}

	// The namespace rule matches the database's.
	pool := dbtest.NewPool(t)
	_, err := pool.Exec(context.Background(),
		"INSERT INTO tasker.task_namespaces (task_namespace_uuid, name) VALUES (gen_random_uuid(), $1)", strings.Repeat("n", 49))
	require.Error(t, err)
	_, err = pool.Exec(context.Background(),
		"INSERT INTO tasker.task_namespaces (task_namespace_uuid, name) VALUES (gen_random_uuid(), $1)", strings.Repeat("n", 48))
	require.NoError(t, err)
}

func TestSendReadVisibility(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs")
	ctx := context.Background()

	id, err := c.Send(ctx, pool, "jobs", map[string]any{"n": 1}, map[string]string{"k": "v"}, 0)
	require.NoError(t, err)
	require.Positive(t, id)

	const vt = time.Second
	readAt := time.Now()
	msgs, err := c.Read(ctx, pool, "jobs", vt, 10, 0)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, id, m.ID)
	require.Equal(t, 1, m.ReadCount)
	require.JSONEq(t, `{"n": 1}`, string(m.Body))
	require.Equal(t, map[string]string{"k": "v"}, m.Headers)
	require.True(t, m.VT.After(m.EnqueuedAt))
	require.WithinDuration(t, m.EnqueuedAt.Add(vt), m.VT, vt, "vt is about read time + the visibility timeout")

	// Hidden until vt passes.
	msgs, err = c.Read(ctx, pool, "jobs", vt, 10, 0)
	require.NoError(t, err)
	if time.Since(readAt) < vt {
		require.Empty(t, msgs, "a read message is invisible until its vt")
	}
	hidden, err := c.ReadMessage(ctx, pool, "jobs", id, vt)
	require.NoError(t, err)
	if time.Since(readAt) < vt {
		require.Nil(t, hidden, "ReadMessage of a hidden message")
	}

	deadline := time.Now().Add(waitTimeout)
	for {
		msgs, err = c.Read(ctx, pool, "jobs", time.Minute, 10, 0)
		require.NoError(t, err)
		if len(msgs) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the message never became visible again")
		time.Sleep(25 * time.Millisecond)
	}
	require.GreaterOrEqual(t, time.Since(readAt), vt-50*time.Millisecond, "visible again only after vt")
	require.Len(t, msgs, 1)
	require.Equal(t, id, msgs[0].ID)
	require.Equal(t, 2, msgs[0].ReadCount)
	require.Equal(t, m.EnqueuedAt, msgs[0].EnqueuedAt)
}

func TestReadMessage(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs", "other")
	ctx := context.Background()
	id, err := c.Send(ctx, pool, "jobs", "hello", nil, 0)
	require.NoError(t, err)

	m, err := c.ReadMessage(ctx, pool, "other", id, time.Minute)
	require.NoError(t, err)
	require.Nil(t, m, "the id belongs to another queue")

	m, err = c.ReadMessage(ctx, pool, "jobs", id, time.Hour)
	require.NoError(t, err)
	require.NotNil(t, m)
	require.Equal(t, id, m.ID)
	require.Equal(t, 1, m.ReadCount)
	require.JSONEq(t, `"hello"`, string(m.Body))
	require.Equal(t, map[string]string{}, m.Headers)

	m, err = c.ReadMessage(ctx, pool, "jobs", id, time.Hour)
	require.NoError(t, err)
	require.Nil(t, m, "hidden for an hour")
	msgs, err := c.Read(ctx, pool, "jobs", time.Minute, 10, 0)
	require.NoError(t, err)
	require.Empty(t, msgs)

	m, err = c.ReadMessage(ctx, pool, "jobs", id+1000, time.Minute)
	require.NoError(t, err)
	require.Nil(t, m, "no such message")
}

func TestArchiveDeleteSetVT(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs")
	ctx := context.Background()

	t.Run("archive", func(t *testing.T) {
		t.Parallel()
		id, err := c.Send(ctx, pool, "jobs", map[string]int{"a": 1}, map[string]string{"h": "1"}, 0)
		require.NoError(t, err)
		_, err = c.ReadMessage(ctx, pool, "jobs", id, time.Hour)
		require.NoError(t, err)
		ok, err := c.Archive(ctx, pool, "other", id)
		require.NoError(t, err)
		require.False(t, ok, "wrong queue")
		ok, err = c.Archive(ctx, pool, "jobs", id)
		require.NoError(t, err)
		require.True(t, ok)
		require.Zero(t, countRows(t, pool, "queue_messages", id))
		var queueName string
		var readCt int
		var body, headers []byte
		require.NoError(t, pool.QueryRow(ctx, `SELECT queue_name, read_ct, message, headers FROM tasker.queue_archive WHERE msg_id = $1`, id).
			Scan(&queueName, &readCt, &body, &headers))
		require.Equal(t, "jobs", queueName)
		require.Equal(t, 1, readCt)
		require.JSONEq(t, `{"a": 1}`, string(body))
		require.JSONEq(t, `{"h": "1"}`, string(headers))
		ok, err = c.Archive(ctx, pool, "jobs", id)
		require.NoError(t, err)
		require.False(t, ok, "archiving twice")
		require.Equal(t, 1, countRows(t, pool, "queue_archive", id))
	})

	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		id, err := c.Send(ctx, pool, "jobs", 1, nil, 0)
		require.NoError(t, err)
		ok, err := c.Delete(ctx, pool, "other", id)
		require.NoError(t, err)
		require.False(t, ok, "wrong queue")
		ok, err = c.Delete(ctx, pool, "jobs", id)
		require.NoError(t, err)
		require.True(t, ok)
		require.Zero(t, countRows(t, pool, "queue_messages", id))
		require.Zero(t, countRows(t, pool, "queue_archive", id), "deleted, not archived")
		ok, err = c.Delete(ctx, pool, "jobs", id)
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("set vt", func(t *testing.T) {
		t.Parallel()
		id, err := c.Send(ctx, pool, "jobs", 2, nil, 0)
		require.NoError(t, err)
		m, err := c.ReadMessage(ctx, pool, "jobs", id, time.Hour)
		require.NoError(t, err)
		require.NotNil(t, m)
		m, err = c.ReadMessage(ctx, pool, "jobs", id, time.Hour)
		require.NoError(t, err)
		require.Nil(t, m)
		ok, err := c.SetVT(ctx, pool, "jobs", id, 0)
		require.NoError(t, err)
		require.True(t, ok)
		m, err = c.ReadMessage(ctx, pool, "jobs", id, time.Hour)
		require.NoError(t, err)
		require.NotNil(t, m, "visible again right away")
		require.Equal(t, 2, m.ReadCount)

		ok, err = c.SetVT(ctx, pool, "jobs", id+1000, 0)
		require.NoError(t, err)
		require.False(t, ok, "no such message")
	})
}

func TestSendBatchAndQty(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs")
	ctx := context.Background()
	ids, err := c.SendBatch(ctx, pool, "jobs", []any{map[string]int{"i": 0}, map[string]int{"i": 1}, map[string]int{"i": 2}},
		map[string]string{"batch": "b1"})
	require.NoError(t, err)
	require.Len(t, ids, 3)
	require.Less(t, ids[0], ids[1])
	require.Less(t, ids[1], ids[2])

	msgs, err := c.Read(ctx, pool, "jobs", time.Hour, 2, 0)
	require.NoError(t, err)
	require.Len(t, msgs, 2, "qty caps the read")
	require.Equal(t, ids[0], msgs[0].ID, "oldest first")
	require.Equal(t, ids[1], msgs[1].ID)
	rest, err := c.Read(ctx, pool, "jobs", time.Hour, 10, 0)
	require.NoError(t, err)
	require.Len(t, rest, 1)
	msgs = append(msgs, rest...)
	for i, m := range msgs {
		require.Equal(t, ids[i], m.ID)
		require.JSONEq(t, `{"i": `+string(rune('0'+i))+`}`, string(m.Body))
		require.Equal(t, map[string]string{"batch": "b1"}, m.Headers)
	}

	none, err := c.SendBatch(ctx, pool, "jobs", nil, nil)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs")
	ctx := context.Background()
	headers := map[string]string{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate":  "vendor=a,b",
		"unicode":     "héllo ✓",
		"empty":       "",
	}
	_, err := c.Send(ctx, pool, "jobs", map[string]any{"x": true}, headers, 0)
	require.NoError(t, err)
	_, err = c.Send(ctx, pool, "jobs", "no headers", nil, 0)
	require.NoError(t, err)
	// Headers written by something else keep only their string values.
	_, err = pool.Exec(ctx, `SELECT tasker.queue_send('jobs', '"raw"', '{"s": "x", "n": 1, "b": true, "o": {}}')`)
	require.NoError(t, err)

	msgs, err := c.Read(ctx, pool, "jobs", time.Hour, 10, 0)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	require.Equal(t, headers, msgs[0].Headers)
	require.Equal(t, map[string]string{}, msgs[1].Headers)
	require.Equal(t, map[string]string{"s": "x"}, msgs[2].Headers)

	var out map[string]string
	require.NoError(t, queue.DecodeHeaders(nil, &out))
	require.Nil(t, out)
	require.Error(t, queue.DecodeHeaders([]byte("not json"), &out))
}

func TestReadMinAge(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs")
	ctx := context.Background()
	old, err := c.Send(ctx, pool, "jobs", "old", nil, 0)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE tasker.queue_messages SET enqueued_at = clock_timestamp() - interval '10 seconds' WHERE msg_id = $1", old)
	require.NoError(t, err)
	fresh, err := c.Send(ctx, pool, "jobs", "fresh", nil, 0)
	require.NoError(t, err)

	msgs, err := c.Read(ctx, pool, "jobs", time.Hour, 10, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, old, msgs[0].ID, "only messages older than minAge")

	msgs, err = c.Read(ctx, pool, "jobs", time.Hour, 10, 5*time.Second)
	require.NoError(t, err)
	require.Empty(t, msgs, "the fresh one is too young")

	msgs, err = c.Read(ctx, pool, "jobs", time.Hour, 10, 0)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, fresh, msgs[0].ID)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs", "empty")
	ctx := context.Background()

	m, err := c.Metrics(ctx, pool, "empty")
	require.NoError(t, err)
	require.Equal(t, queue.Metrics{Queue: "empty"}, m)

	hidden, err := c.Send(ctx, pool, "jobs", 1, nil, 0)
	require.NoError(t, err)
	visible, err := c.Send(ctx, pool, "jobs", 2, nil, 0)
	require.NoError(t, err)
	_, err = c.Send(ctx, pool, "jobs", 3, nil, 0)
	require.NoError(t, err)
	_, err = c.Send(ctx, pool, "jobs", 4, nil, time.Hour) // delayed: not claimable
	require.NoError(t, err)
	// The hidden message is by far the oldest; the oldest claimable one is 10 minutes old.
	_, err = pool.Exec(ctx, "UPDATE tasker.queue_messages SET enqueued_at = clock_timestamp() - interval '1 hour' WHERE msg_id = $1", hidden)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE tasker.queue_messages SET enqueued_at = clock_timestamp() - interval '10 minutes' WHERE msg_id = $1", visible)
	require.NoError(t, err)
	r, err := c.ReadMessage(ctx, pool, "jobs", hidden, time.Hour)
	require.NoError(t, err)
	require.NotNil(t, r)

	m, err = c.Metrics(ctx, pool, "jobs")
	require.NoError(t, err)
	require.Equal(t, "jobs", m.Queue)
	require.Equal(t, int64(4), m.Depth)
	require.Equal(t, int64(2), m.Claimable)
	require.GreaterOrEqual(t, m.OldestClaimableAge, 10*time.Minute)
	require.Less(t, m.OldestClaimableAge, 11*time.Minute, "the hidden, older message is not counted")

	ok, err := c.SetVT(ctx, pool, "jobs", hidden, 0)
	require.NoError(t, err)
	require.True(t, ok)
	m, err = c.Metrics(ctx, pool, "jobs")
	require.NoError(t, err)
	require.Equal(t, int64(3), m.Claimable)
	require.GreaterOrEqual(t, m.OldestClaimableAge, time.Hour)
}

// ---------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------

func connector(pool *pgxpool.Pool) func(ctx context.Context) (*pgx.Conn, error) {
	return func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	}
}

// runListener starts l and returns a stop function that cancels it and
// requires Run to return nil.
func runListener(t *testing.T, l *queue.Listener) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "Run returns nil when its context is cancelled")
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)
	select {
	case <-l.Ready():
	case err := <-done:
		t.Fatalf("listener stopped before it was ready: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("listener not ready")
	}
	return stop
}

func receive(t *testing.T, sub *queue.Subscription) int64 {
	t.Helper()
	select {
	case n := <-sub.C:
		return n.ID
	case <-time.After(waitTimeout):
		t.Fatalf("no notification on %s", sub.Queue)
		return 0
	}
}

func requireEmpty(t *testing.T, sub *queue.Subscription) {
	t.Helper()
	select {
	case n := <-sub.C:
		t.Fatalf("unexpected notification %d on %s", n.ID, sub.Queue)
	default:
	}
}

func TestListenerDeliversAtCommit(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs", "other")
	ctx := context.Background()
	l := queue.NewListener(connector(pool), nil)
	sub, err := l.Subscribe("jobs", 16)
	require.NoError(t, err)
	again, err := l.Subscribe("jobs", 1)
	require.NoError(t, err)
	require.Same(t, sub, again, "one subscription per queue")
	other, err := l.Subscribe("other", 16)
	require.NoError(t, err)
	_, err = l.Subscribe("Bad-Name", 1)
	require.Error(t, err)

	stop := runListener(t, l)

	// Resync is signalled on (re)connect, before Ready.
	for _, s := range []*queue.Subscription{sub, other} {
		select {
		case <-s.Resync:
		case <-time.After(waitTimeout):
			t.Fatalf("no resync signal on %s", s.Queue)
		}
	}
	_, err = l.Subscribe("late", 1)
	require.Error(t, err, "subscribing after Run started")

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	id, err := c.Send(ctx, tx, "jobs", "in tx", nil, 0)
	require.NoError(t, err)
	// Negative check: nothing may arrive before commit.
	select {
	case got := <-sub.C:
		t.Fatalf("notification %d delivered before commit", got.ID)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, id, receive(t, sub))

	// A rolled-back send is never announced; a delayed one is not announced
	// at send time. Notifications arrive in commit order on the one
	// connection, so once the next committed id arrives nothing else can be
	// pending in between.
	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	_, err = c.Send(ctx, tx, "jobs", "rolled back", nil, 0)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	_, err = c.Send(ctx, pool, "jobs", "delayed", nil, time.Hour)
	require.NoError(t, err)
	id2, err := c.Send(ctx, pool, "jobs", "next", nil, 0)
	require.NoError(t, err)
	require.Equal(t, id2, receive(t, sub))

	// Each queue's notifications go to its own subscription.
	id3, err := c.Send(ctx, pool, "other", "x", nil, 0)
	require.NoError(t, err)
	require.Equal(t, id3, receive(t, other))
	requireEmpty(t, sub)

	// A batch announces every message.
	ids, err := c.SendBatch(ctx, pool, "jobs", []any{1, 2, 3}, nil)
	require.NoError(t, err)
	got := []int64{receive(t, sub), receive(t, sub), receive(t, sub)}
	require.Equal(t, ids, got)
	require.Zero(t, l.Dropped.Load())
	require.Equal(t, int64(6), l.Received.Load())

	stop()
}

func TestListenerDropsWhenFull(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs")
	ctx := context.Background()
	l := queue.NewListener(connector(pool), nil)
	sub, err := l.Subscribe("jobs", 1)
	require.NoError(t, err)
	runListener(t, l)

	ids, err := c.SendBatch(ctx, pool, "jobs", []any{1, 2, 3}, nil)
	require.NoError(t, err)
	deadline := time.Now().Add(waitTimeout)
	for l.Received.Load() < 3 {
		require.True(t, time.Now().Before(deadline), "received %d of 3 notifications", l.Received.Load())
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, int64(2), l.Dropped.Load(), "a full subscription drops rather than blocks")
	require.Equal(t, ids[0], receive(t, sub))
	requireEmpty(t, sub)
}

func TestListenerWithoutSubscriptions(t *testing.T) {
	t.Parallel()
	l := queue.NewListener(func(context.Context) (*pgx.Conn, error) {
		return nil, errors.New("must not connect")
	}, nil)
	stop := runListener(t, l)
	stop()
}

func TestMessageJSON(t *testing.T) {
	t.Parallel()
	pool, c := setup(t, "jobs")
	ctx := context.Background()
	_, err := c.Send(ctx, pool, "jobs", make(chan int), nil, 0)
	require.Error(t, err, "a body that cannot be encoded")
	type body struct {
		A string `json:"a"`
		B []int  `json:"b"`
	}
	_, err = c.Send(ctx, pool, "jobs", body{A: "x", B: []int{1, 2}}, nil, 0)
	require.NoError(t, err)
	msgs, err := c.Read(ctx, pool, "jobs", time.Hour, 1, 0)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	var got body
	require.NoError(t, json.Unmarshal(msgs[0].Body, &got))
	require.Equal(t, body{A: "x", B: []int{1, 2}}, got)
}

func TestParseNotification(t *testing.T) {
	t.Parallel()
	n, err := queue.ParseNotification("42")
	require.NoError(t, err)
	require.Equal(t, queue.Notification{ID: 42}, n)

	n, err = queue.ParseNotification(`7 {"traceparent": "00-abc-def-01", "n": 1}`)
	require.NoError(t, err)
	require.Equal(t, queue.Notification{ID: 7, Headers: map[string]string{"traceparent": "00-abc-def-01"}}, n)

	for _, bad := range []string{"", "x", "4x", " 42", "42 not-json"} {
		_, err := queue.ParseNotification(bad)
		require.Error(t, err, "%q", bad)
	}
}
