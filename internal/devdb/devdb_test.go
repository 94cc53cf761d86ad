package devdb

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if !hasServerBinaries(dir) {
		t.Fatalf("FindBinDir returned %s, which lacks initdb, pg_ctl or postgres", dir)
	}
}

func TestStartStop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		durable bool
		want    string
	}{
		{name: "durable", durable: true, want: "on"},
		{name: "fast", durable: false, want: "off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()

			opts := Options{
				Durable:  tc.durable,
				Settings: map[string]string{"max_connections": "50", "application_name": "it's devdb"},
				Log:      t.Logf,
			}
			if tc.durable {
				// Also exercise a caller-chosen port.
				p, err := freePort()
				if err != nil {
					t.Fatal(err)
				}
				opts.Port = p
			}
			t0 := time.Now()
			c, err := Start(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("start took %v", time.Since(t0))
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					if err := c.Stop(context.Background()); err != nil {
						t.Error(err)
					}
				}
			})
			if opts.Port != 0 && c.Port() != opts.Port {
				t.Errorf("Port() = %d, want %d", c.Port(), opts.Port)
			}
			if want := ":" + strconv.Itoa(c.Port()) + "/app?"; !strings.Contains(c.URL("app"), want) {
				t.Errorf("URL(app) = %s, want it to contain %s", c.URL("app"), want)
			}
			if _, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION")); err != nil {
				t.Errorf("DataDir() is not a data directory: %v", err)
			}

			conn, err := pgx.Connect(ctx, c.URL("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			for setting, want := range map[string]string{
				"fsync":              tc.want,
				"synchronous_commit": tc.want,
				"full_page_writes":   tc.want,
				"max_connections":    "50",
				"shared_buffers":     "128MB",
				"application_name":   "it's devdb",
			} {
				var got string
				if err := conn.QueryRow(ctx, "SHOW "+setting).Scan(&got); err != nil {
					t.Fatalf("SHOW %s: %v", setting, err)
				}
				if got != want {
					t.Errorf("SHOW %s = %q, want %q", setting, got, want)
				}
			}
			if err := conn.Close(ctx); err != nil {
				t.Fatal(err)
			}

			// Stop must not depend on the caller's context still being live.
			cancelled, cancelNow := context.WithCancel(ctx)
			cancelNow()
			t0 = time.Now()
			stopped = true
			if err := c.Stop(cancelled); err != nil {
				t.Fatal(err)
			}
			t.Logf("stop took %v", time.Since(t0))
			if _, err := os.Stat(filepath.Dir(c.DataDir())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temp dir %s still exists after Stop (stat: %v)", filepath.Dir(c.DataDir()), err)
			}
			if err := c.Stop(ctx); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

func TestStartRejectsReservedSetting(t *testing.T) {
	_, err := Start(t.Context(), Options{Settings: map[string]string{"port": "5432"}})
	if err == nil || !strings.Contains(err.Error(), "Options.Port") {
		t.Fatalf("Start with a port setting: err = %v, want it rejected", err)
	}
}

func TestStartFailureCleansUp(t *testing.T) {
	// An unknown setting makes the server refuse to start after initdb ran,
	// so this covers the cleanup of a half-built cluster.
	_, err := Start(t.Context(), Options{Settings: map[string]string{"no_such_setting": "1"}})
	if err == nil {
		t.Fatal("Start with an unknown setting succeeded")
	}
	t.Logf("Start error (expected): %v", err)
	if !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("error does not include the server log: %v", err)
	}
	m := regexp.MustCompile(`server log \((.*)\)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error does not name the server log: %v", err)
	}
	dir := filepath.Dir(m[1])
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Start left %s behind (stat: %v)", dir, err)
	}
}

func TestQuoteConf(t *testing.T) {
	for in, want := range map[string]string{
		"128MB":    "'128MB'",
		"it's":     "'it''s'",
		`a\b`:      `'a\\b'`,
		"":         "''",
		"x y, 'z'": "'x y, ''z'''",
	} {
		if got := quoteConf(in); got != want {
			t.Errorf("quoteConf(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSortNewestFirst(t *testing.T) {
	dirs := []string{
		"/usr/lib/postgresql/9.6/bin",
		"/usr/lib/postgresql/15/bin",
		"/usr/lib/postgresql/weird/bin",
		"/usr/lib/postgresql/10/bin",
	}
	sortNewestFirst(dirs)
	want := []string{
		"/usr/lib/postgresql/15/bin",
		"/usr/lib/postgresql/10/bin",
		"/usr/lib/postgresql/9.6/bin",
		"/usr/lib/postgresql/weird/bin",
	}
	if !slices.Equal(dirs, want) {
		t.Errorf("sortNewestFirst = %v, want %v", dirs, want)
	}
}

func TestReapStale(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})

	// Pretend the cluster belongs to a process that died without Stop.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, ownerFile), []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	owner, err := serverOwner()
	if err != nil {
		t.Fatal(err)
	}
	reapStale(ctx, c.binDir, owner, t.Logf)

	if _, err := os.Stat(c.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale cluster dir %s still exists (stat: %v)", c.dir, err)
	}
	if conn, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
		_ = conn.Close(ctx)
		t.Error("stale cluster still accepts connections")
	}
}

func TestStartRetriesTakenPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	owner, err := serverOwner()
	if err != nil {
		t.Fatal(err)
	}
	binDir, err := FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	password, err := randomPassword()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{binDir: binDir, dir: dir, password: password, owner: owner, logf: t.Logf}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := owner.chown(dir); err != nil {
		t.Fatal(err)
	}
	if err := c.initdb(ctx, false); err != nil {
		t.Fatal(err)
	}
	settings, err := serverSettings(Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Simulates losing the race between probing a port and postgres binding it.
	calls := 0
	nextPort := func() (int, error) {
		calls++
		if calls == 1 {
			return takenPort, nil
		}
		return freePort()
	}
	if err := c.start(ctx, nextPort, settings); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || c.Port() == takenPort {
		t.Fatalf("nextPort called %d times, port %d (taken: %d); want a retry on a new port", calls, c.Port(), takenPort)
	}
	if err := c.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// Any local account can reach 127.0.0.1: without the cluster's random
// password a connection is refused, over TCP and over the socket, and
// pg_hba.conf trusts nobody.
func TestConnectionsNeedThePassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("with the password: %v", err)
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(c.Port())
	for name, dsn := range map[string]string{
		"tcp without password":    "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable",
		"tcp with wrong password": "postgres://postgres:guess@127.0.0.1:" + port + "/postgres?sslmode=disable",
		"socket without password": "host=" + c.dir + " port=" + port + " user=postgres dbname=postgres",
	} {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			_ = conn.Close(ctx)
			t.Errorf("%s: connected", name)
			continue
		}
		if !strings.Contains(err.Error(), "password") && !strings.Contains(err.Error(), "28P01") {
			t.Errorf("%s: refused for another reason than authentication: %v", name, err)
		}
	}
	hba, err := os.ReadFile(filepath.Join(c.DataDir(), "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(hba), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && slices.Contains(f, "trust") {
			t.Errorf("pg_hba.conf trusts: %q", line)
		}
	}
}

// Halt and Resume keep the data and the port: what a client had written is
// still there after a fast or an immediate (crash-like) restart.
func TestHaltResume(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Durable: true, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	port := c.Port()
	for _, mode := range []ShutdownMode{ShutdownFast, ShutdownImmediate} {
		if err := c.Halt(ctx, mode); err != nil {
			t.Fatal(err)
		}
		if err := exec("SELECT 1"); err == nil {
			t.Fatalf("%s: connected to a halted server", mode)
		}
		if err := c.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		if c.Port() != port {
			t.Fatalf("%s: port changed from %d to %d", mode, port, c.Port())
		}
		if err := exec("INSERT INTO kept SELECT n + 1 FROM kept"); err != nil {
			t.Fatalf("%s: after resume: %v", mode, err)
		}
	}
	if err := c.Restart(ctx, ShutdownFast); err != nil {
		t.Fatal(err)
	}
	// 1 row, doubled after each of the two resumes.
	if err := exec("DO $$ BEGIN IF (SELECT count(*) FROM kept) <> 4 THEN RAISE 'rows lost'; END IF; END $$"); err != nil {
		t.Fatal(err)
	}
}
