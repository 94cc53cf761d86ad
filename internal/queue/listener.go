package queue

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// Listener holds one LISTEN connection per process and fans notifications out
// to per-queue subscriptions. A full subscription drops the wake-up rather
// than block the connection; the consumers' fallback pollers pick the
// message up.
type Listener struct {
	connect func(ctx context.Context) (*pgx.Conn, error)
	logger  *slog.Logger

	mu       sync.Mutex
	subs     map[string]*Subscription
	channels map[string]func(payload string)
	started  bool

	ready     chan struct{}
	readyOnce sync.Once
	// Dropped counts wake-ups lost to full subscriptions.
	Dropped atomic.Int64
	// Received counts notifications received.
	Received atomic.Int64
}

// Notification announces one message: its id and, when the sender put trace
// context on it, the message headers (so a consumer can start its spans
// under the producer's before it reads the message).
type Notification struct {
	ID      int64
	Headers map[string]string
}

// Subscription delivers the notifications of one queue.
type Subscription struct {
	Queue string
	C     chan Notification
	// Resync is signalled after (re)connecting: anything sent while the
	// listener was not connected has to be found by reading the queue.
	Resync chan struct{}
	// Received and Dropped count this queue's wake-ups.
	Received, Dropped atomic.Int64
}

// NewListener returns a listener that opens its connection with connect.
func NewListener(connect func(ctx context.Context) (*pgx.Conn, error), logger *slog.Logger) *Listener {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{connect: connect, logger: logger, subs: map[string]*Subscription{},
		channels: map[string]func(string){}, ready: make(chan struct{})}
}

// HandleChannel makes fn receive the payload of every notification on
// channel, a channel that is no queue (such as TaskTerminalChannel). fn runs
// on the listening connection's goroutine and must not block. On a reconnect
// fn("") is called: notifications may have been missed. It must be called
// before Run.
func (l *Listener) HandleChannel(channel string, fn func(payload string)) error {
	if err := ValidateName(channel); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return fmt.Errorf("handling %s: listener already running", channel)
	}
	if _, ok := l.channels[channel]; ok {
		return fmt.Errorf("handling %s: already handled", channel)
	}
	l.channels[channel] = fn
	return nil
}

// Subscribe returns the subscription for queue. It must be called before Run.
func (l *Listener) Subscribe(queue string, buffer int) (*Subscription, error) {
	if err := ValidateName(queue); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return nil, fmt.Errorf("subscribing to %s: listener already running", queue)
	}
	if s, ok := l.subs[queue]; ok {
		return s, nil
	}
	s := &Subscription{Queue: queue, C: make(chan Notification, buffer), Resync: make(chan struct{}, 1)}
	l.subs[queue] = s
	return s, nil
}

// Ready is closed once the listener has issued LISTEN for every subscription.
func (l *Listener) Ready() <-chan struct{} { return l.ready }

// Run listens until ctx is done, reconnecting after connection loss.
func (l *Listener) Run(ctx context.Context) error {
	l.mu.Lock()
	l.started = true
	subs := make([]*Subscription, 0, len(l.subs))
	for _, s := range l.subs {
		subs = append(subs, s)
	}
	channels := make(map[string]func(string), len(l.channels))
	for k, v := range l.channels {
		channels[k] = v
	}
	l.mu.Unlock()
	if len(subs) == 0 && len(channels) == 0 {
		l.readyOnce.Do(func() { close(l.ready) })
		<-ctx.Done()
		return nil
	}
	pl := &pgxlisten.Listener{
		Connect:        l.connect,
		ReconnectDelay: 500 * time.Millisecond,
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				l.logger.WarnContext(ctx, "queue listener error; reconnecting", "error", err)
			}
		},
	}
	var backlogSeen atomic.Int32
	onBacklog := func() {
		if int(backlogSeen.Add(1)) >= len(subs)+len(channels) {
			l.readyOnce.Do(func() { close(l.ready) })
		}
	}
	for _, s := range subs {
		pl.Handle(s.Queue, &subHandler{l: l, s: s, onBacklog: onBacklog})
	}
	for ch, fn := range channels {
		pl.Handle(ch, &channelHandler{l: l, fn: fn, onBacklog: onBacklog})
	}
	err := pl.Listen(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type subHandler struct {
	l         *Listener
	s         *Subscription
	onBacklog func()
}

func (h *subHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.l.Received.Add(1)
	h.s.Received.Add(1)
	note, err := ParseNotification(n.Payload)
	if err != nil {
		return fmt.Errorf("notification on %s: %w", n.Channel, err)
	}
	select {
	case h.s.C <- note:
	default:
		h.l.Dropped.Add(1)
		h.s.Dropped.Add(1)
	}
	return nil
}

// HandleBacklog runs right after LISTEN on every (re)connect.
func (h *subHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	select {
	case h.s.Resync <- struct{}{}:
	default:
	}
	h.onBacklog()
	return nil
}

// ParseNotification decodes a queue_send payload: "<msg_id>" or
// "<msg_id> <headers JSON>".
func ParseNotification(payload string) (Notification, error) {
	idPart, rest, _ := strings.Cut(payload, " ")
	id, err := strconv.ParseInt(idPart, 10, 64)
	if err != nil {
		return Notification{}, fmt.Errorf("bad payload %q", payload)
	}
	n := Notification{ID: id}
	if rest != "" {
		if err := DecodeHeaders([]byte(rest), &n.Headers); err != nil {
			return Notification{}, err
		}
	}
	return n, nil
}

// Subscriptions returns the listener's subscriptions.
func (l *Listener) Subscriptions() []*Subscription {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Subscription, 0, len(l.subs))
	for _, s := range l.subs {
		out = append(out, s)
	}
	return out
}

type channelHandler struct {
	l         *Listener
	fn        func(string)
	onBacklog func()
}

func (h *channelHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.l.Received.Add(1)
	h.fn(n.Payload)
	return nil
}

func (h *channelHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.fn("")
	h.onBacklog()
	return nil
}
