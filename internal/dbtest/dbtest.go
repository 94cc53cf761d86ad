// Package dbtest gives tests a real, migrated PostgreSQL database each.
//
// A package opts in from its TestMain:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
// Main starts one throwaway cluster per test binary (or uses the server of
// TASKER_TEST_DATABASE_URL), migrates a template database once, and each
// NewDatabase clones that template, which costs tens of milliseconds instead
// of a full migration per test.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/devdb"
)

// EnvURL names a server to use instead of a throwaway cluster. Its user needs
// CREATEDB; templates and test databases are created next to the database it
// names and dropped again.
const EnvURL = "TASKER_TEST_DATABASE_URL"

const (
	// setupTimeout covers initdb, start and migration on a busy 2-core CI box.
	setupTimeout = 3 * time.Minute
	// opTimeout bounds one CREATE or DROP DATABASE.
	opTimeout = time.Minute
	// adminConns caps concurrent CREATE/DROP DATABASE; each one checkpoints,
	// so more parallelism only queues inside the server.
	adminConns = 4
	// poolConns is the size of the pools NewPool returns.
	poolConns = 20
)

// harness is what Main sets up for the package's tests.
type harness struct {
	server   *url.URL      // any database on the server; NewDatabase swaps the path
	admin    *pgxpool.Pool // issues CREATE/DROP DATABASE
	template string
}

// current is package state only because testing.M offers no other way to
// hand Main's setup to tests. Main writes it once before m.Run starts any
// test and never again, so tests only read it.
var current *harness

// Main wraps a package's TestMain: it provides the server and the migrated
// template, runs the tests, tears everything down and exits with the tests'
// code (or 1 if setup or teardown fails).
func Main(m *testing.M) {
	os.Exit(run(m, ""))
}

// MainWithExampleDatabase is Main that also creates one database for the
// package's Example functions and puts its URL in the environment variable
// env, so examples read it the way a program reads DATABASE_URL.
func MainWithExampleDatabase(m *testing.M, env string) {
	os.Exit(run(m, env))
}

func run(m *testing.M, exampleEnv string) (code int) {
	// Parsed here, not by m.Run, so testing.Verbose can pick the log level.
	flag.Parse()
	logf := func(string, ...any) {}
	if testing.Verbose() {
		logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	h, teardown, err := setup(ctx, logf)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := teardown(); err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}()
	current = h
	if exampleEnv != "" {
		name := "ex_" + randomHex()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_, err := h.admin.Exec(ctx, "CREATE DATABASE "+quoteIdent(name)+" TEMPLATE "+quoteIdent(h.template)+" STRATEGY file_copy")
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: creating the example database: %v\n", err)
			return 1
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			if err := h.drop(ctx, name); err != nil {
				fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
				if code == 0 {
					code = 1
				}
			}
		}()
		if err := os.Setenv(exampleEnv, h.urlFor(name)); err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
			return 1
		}
	}
	return m.Run()
}

// setup returns the harness and a teardown that undoes everything setup did.
// On error it has already undone its partial work.
func setup(ctx context.Context, logf func(string, ...any)) (_ *harness, _ func() error, err error) {
	// undo runs in reverse order of the steps that succeeded.
	var undo []func(context.Context) error
	teardown := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i](ctx))
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, teardown())
		}
	}()

	serverURL := os.Getenv(EnvURL)
	if serverURL == "" {
		t0 := time.Now()
		cluster, err := devdb.Start(ctx, devdb.Options{Log: logf})
		if err != nil {
			return nil, nil, fmt.Errorf("starting throwaway postgres (set %s to use an existing server): %w", EnvURL, err)
		}
		undo = append(undo, cluster.Stop)
		logf("dbtest: cluster on port %d up in %v", cluster.Port(), time.Since(t0).Round(time.Millisecond))
		serverURL = cluster.URL("postgres")
	}
	server, err := url.Parse(serverURL)
	if err != nil || (server.Scheme != "postgres" && server.Scheme != "postgresql") {
		return nil, nil, fmt.Errorf("%s must be a postgres:// URL, got %q", EnvURL, serverURL)
	}

	adminCfg, err := pgxpool.ParseConfig(server.String())
	if err != nil {
		return nil, nil, fmt.Errorf("parsing server url: %w", err)
	}
	adminCfg.MaxConns = adminConns
	admin, err := pgxpool.NewWithConfig(ctx, adminCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to test server: %w", err)
	}
	undo = append(undo, func(context.Context) error { admin.Close(); return nil })

	h := &harness{server: server, admin: admin, template: "tmpl_" + randomHex()}
	t0 := time.Now()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+quoteIdent(h.template)); err != nil {
		return nil, nil, fmt.Errorf("creating template database %s: %w", h.template, err)
	}
	undo = append(undo, func(ctx context.Context) error { return h.drop(ctx, h.template) })
	if err := migrate(ctx, h.urlFor(h.template)); err != nil {
		return nil, nil, err
	}
	// Cloning fails while anyone is connected to the template, so forbid
	// connections rather than rely on every test leaving it alone.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+quoteIdent(h.template)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return nil, nil, fmt.Errorf("locking template database %s: %w", h.template, err)
	}
	logf("dbtest: template %s migrated in %v", h.template, time.Since(t0).Round(time.Millisecond))
	return h, teardown, nil
}

func migrate(ctx context.Context, url string) error {
	pool, err := db.NewPool(ctx, url, 2)
	if err != nil {
		return fmt.Errorf("connecting to template database: %w", err)
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrating template database: %w", err)
	}
	return nil
}

// NewDatabase creates a database cloned from the migrated template, drops it
// (disconnecting any remaining sessions) when t finishes, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	h := current
	if h == nil {
		t.Fatal("dbtest.NewDatabase needs dbtest.Main: add `func TestMain(m *testing.M) { dbtest.Main(m) }` to the package's tests")
	}
	name := "t_" + randomHex()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	// FILE_COPY copies the template's files instead of WAL-logging every
	// block, which is markedly faster for small databases.
	if _, err := h.admin.Exec(ctx, "CREATE DATABASE "+quoteIdent(name)+" TEMPLATE "+quoteIdent(h.template)+" STRATEGY file_copy"); err != nil {
		t.Fatalf("dbtest: creating database %s from %s: %v", name, h.template, err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := h.drop(ctx, name); err != nil {
			t.Errorf("dbtest: %v", err)
		}
	})
	return h.urlFor(name)
}

// NewPool returns a pool on a fresh database (see NewDatabase), set up the way
// Tasker sets up its own, and closes it when t finishes, before the database
// is dropped.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := NewDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	pool, err := db.NewPool(ctx, url, poolConns)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// drop uses FORCE so that connections a test leaked cannot block it.
func (h *harness) drop(ctx context.Context, name string) error {
	if _, err := h.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

func (h *harness) urlFor(database string) string {
	u := *h.server
	u.Path = "/" + database
	u.RawPath = ""
	return u.String()
}

func quoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// randomHex makes database names unique across parallel tests and across
// test binaries sharing one server.
func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error since Go 1.24.
	return hex.EncodeToString(b)
}
