package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Floor is what PostgreSQL itself costs on this machine, measured in the same
// run as the benchmark it accompanies.
type Floor struct {
	Samples int `json:"samples"`
	// Commit: one autocommit INSERT into an ordinary (WAL-logged) table on a
	// dedicated connection, i.e. one round trip plus one WAL flush.
	CommitP50 float64 `json:"commit_p50_ms"`
	CommitP95 float64 `json:"commit_p95_ms"`
	CommitP99 float64 `json:"commit_p99_ms"`
	// Notify: SELECT pg_notify on one connection until a LISTEN on another
	// connection has received it.
	NotifyP50 float64 `json:"notify_p50_ms"`
	NotifyP95 float64 `json:"notify_p95_ms"`
	NotifyP99 float64 `json:"notify_p99_ms"`
	// RoundTrip: one `SELECT 1` on a dedicated connection (no commit to
	// wait for): the price of every statement the engine sends.
	RoundTripP50 float64 `json:"roundtrip_p50_ms"`
	RoundTripP99 float64 `json:"roundtrip_p99_ms"`
}

// floorWarmup samples are taken and thrown away before each floor measurement.
const floorWarmup = 10

// MeasureFloor measures n commits, n NOTIFY round trips and n plain
// statement round trips on fresh connections to url.
//
// The commit floor writes to an ordinary table, not a temporary one: a
// transaction that writes only temporary (or unlogged) tables writes no WAL
// of its own, and PostgreSQL commits it without waiting for a WAL flush, so
// it would not show the cost of a durable commit. The table is dropped again.
func MeasureFloor(ctx context.Context, url string, n int) (Floor, error) {
	f := Floor{Samples: n}
	commit, err := commitLatency(ctx, url, n, false)
	if err != nil {
		return f, err
	}
	notify, err := notifyRoundTrip(ctx, url, n)
	if err != nil {
		return f, err
	}
	rt, err := roundTrip(ctx, url, n)
	if err != nil {
		return f, err
	}
	f.RoundTripP50, f.RoundTripP99 = rt.pct(50), rt.pct(99)
	f.CommitP50, f.CommitP95, f.CommitP99 = commit.pct(50), commit.pct(95), commit.pct(99)
	f.NotifyP50, f.NotifyP95, f.NotifyP99 = notify.pct(50), notify.pct(95), notify.pct(99)
	return f, nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}

// commitLatency times n autocommit INSERTs. temp selects a temporary table
// (kept for comparison: see MeasureFloor).
func commitLatency(ctx context.Context, url string, n int, temp bool) (_ *hist, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("floor: connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	table := pgx.Identifier{"tasker_bench_floor_" + randomSuffix()}.Sanitize()
	create := "CREATE TABLE " + table + " (id bigint NOT NULL, v text NOT NULL)"
	if temp {
		create = "CREATE TEMP TABLE " + table + " (id bigint NOT NULL, v text NOT NULL)"
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("floor: creating table: %w", err)
	}
	defer func() {
		if _, derr := conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table); derr != nil {
			err = errors.Join(err, fmt.Errorf("floor: dropping table: %w", derr))
		}
	}()
	insert := "INSERT INTO " + table + " (id, v) VALUES ($1, 'floor')"
	h := newHist()
	for i := range n + floorWarmup {
		t0 := time.Now()
		if _, err := conn.Exec(ctx, insert, int64(i)); err != nil {
			return nil, fmt.Errorf("floor: insert: %w", err)
		}
		if i >= floorWarmup {
			h.record(time.Since(t0))
		}
	}
	return h, nil
}

// notifyRoundTrip times n notifications from one connection to another.
func notifyRoundTrip(ctx context.Context, url string, n int) (*hist, error) {
	listen, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("floor: connecting: %w", err)
	}
	defer func() { _ = listen.Close(context.WithoutCancel(ctx)) }()
	send, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("floor: connecting: %w", err)
	}
	defer func() { _ = send.Close(context.WithoutCancel(ctx)) }()
	channel := "tasker_bench_floor_" + randomSuffix()
	if _, err := listen.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return nil, fmt.Errorf("floor: listen: %w", err)
	}
	h := newHist()
	for i := range n + floorWarmup {
		payload := strconv.Itoa(i)
		t0 := time.Now()
		if _, err := send.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload); err != nil {
			return nil, fmt.Errorf("floor: notify: %w", err)
		}
		for {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			note, err := listen.WaitForNotification(wctx)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("floor: waiting for notification %d: %w", i, err)
			}
			if note.Channel == channel && note.Payload == payload {
				break
			}
		}
		if i >= floorWarmup {
			h.record(time.Since(t0))
		}
	}
	return h, nil
}

// roundTrip times n `SELECT 1` statements.
func roundTrip(ctx context.Context, url string, n int) (*hist, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("floor: connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	h := newHist()
	var one int
	for i := range n + floorWarmup {
		t0 := time.Now()
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			return nil, fmt.Errorf("floor: select 1: %w", err)
		}
		if i >= floorWarmup {
			h.record(time.Since(t0))
		}
	}
	return h, nil
}
