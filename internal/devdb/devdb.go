// Package devdb runs a throwaway PostgreSQL cluster for `tasker dev`, the
// benchmarks and the tests, so none of them needs a server set up by hand.
package devdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configures Start.
type Options struct {
	// Durable keeps fsync, synchronous_commit and full_page_writes on (benchmarks); false turns them off (tests; faster).
	Durable bool
	// Port 0 picks a free port on 127.0.0.1.
	Port int
	// Settings are extra `-c key=value` server settings (e.g. max_connections).
	Settings map[string]string
	// Log receives progress lines (may be nil).
	Log func(format string, args ...any)
}

// Cluster is a running throwaway cluster. Stop it to kill the server and
// delete its files.
type Cluster struct {
	binDir string
	// dir is the temp root: it holds data/, the server log, the unix socket
	// and the owner file, so removing it removes every trace of the cluster.
	dir  string
	port int
	// password is the superuser's, random per cluster: the server asks every
	// connection for it (scram-sha-256), so another local account cannot
	// open a superuser session on the TCP port.
	password string
	owner    *osUser
	logf     func(format string, args ...any)

	mu      sync.Mutex
	stopped bool
}

const (
	dirPrefix = "tasker-devdb-"
	// confFile is included from postgresql.conf. Putting the settings in a
	// file rather than on pg_ctl's -o line avoids pg_ctl's shell quoting and
	// keeps them across a plain `pg_ctl restart`.
	confFile  = "tasker_devdb.conf"
	logFile   = "postgres.log"
	ownerFile = "owner.pid"
	// stopTimeout bounds Stop independently of the caller's context, which is
	// often already cancelled when a program shuts down.
	stopTimeout = 30 * time.Second
	// readyTimeout applies only when the caller's context has no deadline, so a
	// server that never accepts connections cannot hang Start forever.
	readyTimeout = 60 * time.Second
	// portAttempts covers the race between probing a free port and the
	// server binding it, which parallel test packages can lose.
	portAttempts = 5
)

// Start creates a cluster in a new temp dir, starts it on 127.0.0.1 and waits
// until it accepts connections. On error nothing is left behind.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	settings, err := serverSettings(opts)
	if err != nil {
		return nil, err
	}
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	owner, err := serverOwner()
	if err != nil {
		return nil, err
	}
	reapStale(ctx, binDir, owner, logf)

	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating temp dir for postgres: %w", err)
	}
	password, err := randomPassword()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{binDir: binDir, dir: dir, port: opts.Port, password: password, owner: owner, logf: logf}
	defer func() {
		if err != nil {
			if stopErr := c.Stop(ctx); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up after failed start: %w", stopErr))
			}
		}
	}()

	// The owner file lets a later Start remove this cluster if this process
	// dies without calling Stop (e.g. a test binary killed by -timeout).
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("writing owner file: %w", err)
	}
	if err := owner.chown(dir); err != nil {
		return nil, fmt.Errorf("handing temp dir %s to the postgres user: %w", dir, err)
	}

	t0 := time.Now()
	if err := c.initdb(ctx, opts.Durable); err != nil {
		return nil, err
	}
	logf("devdb: initdb in %s took %v", c.DataDir(), time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	var nextPort func() (int, error)
	if opts.Port == 0 {
		nextPort = freePort
	}
	if err := c.start(ctx, nextPort, settings); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	logf("devdb: postgres ready on 127.0.0.1:%d after %v", c.port, time.Since(t0).Round(time.Millisecond))
	return c, nil
}

// URL returns a connection URL for database on this cluster.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// randomPassword is 128 random bits in hex (URL-safe, no quoting needed).
func randomPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating the cluster password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Port returns the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.dir, "data") }

// Stop shuts the server down (fast mode, falling back to immediate) and
// removes the temp dir. It ignores ctx's cancellation so that shutdown paths
// can still clean up, and calls after the first do nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	t0 := time.Now()
	var errs []error
	if err := stopServer(ctx, c.binDir, c.DataDir(), c.owner); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", c.dir, err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.logf("devdb: stopped postgres and removed %s in %v", c.dir, time.Since(t0).Round(time.Millisecond))
	return nil
}

// stopServer stops the postmaster of dataDir if one may be running.
func stopServer(ctx context.Context, binDir, dataDir string, owner *osUser) error {
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	pgCtl := filepath.Join(binDir, "pg_ctl")
	out, err := owner.command(ctx, pgCtl, "-D", dataDir, "-m", "fast", "-t", "15", "-w", "stop").CombinedOutput()
	if err == nil {
		return nil
	}
	// Fast shutdown can stall (e.g. behind a long checkpoint on a slow disk);
	// the data is thrown away anyway, so immediate is acceptable.
	out2, err2 := owner.command(ctx, pgCtl, "-D", dataDir, "-m", "immediate", "-t", "10", "-w", "stop").CombinedOutput()
	if err2 == nil {
		return nil
	}
	return fmt.Errorf("stopping postgres in %s: fast: %w: %s; immediate: %w: %s",
		dataDir, err, bytes.TrimSpace(out), err2, bytes.TrimSpace(out2))
}

func (c *Cluster) initdb(ctx context.Context, durable bool) error {
	// C.UTF-8 does not exist on macOS; there C with UTF8 encoding is the
	// equivalent byte-order collation.
	locale := "C.UTF-8"
	if runtime.GOOS != "linux" {
		locale = "C"
	}
	if c.password == "" {
		return errors.New("initdb: the cluster has no password")
	}
	// The password reaches initdb through a file only the server's user can
	// read, never the command line (visible to every local user).
	pwfile := filepath.Join(c.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing password file: %w", err)
	}
	defer os.Remove(pwfile)
	if err := c.owner.chown(pwfile); err != nil {
		return fmt.Errorf("handing %s to the postgres user: %w", pwfile, err)
	}
	args := []string{
		"-D", c.DataDir(), "-U", "postgres", "-A", "scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8",
		"--locale=" + locale, "--no-instructions",
	}
	if !durable {
		args = append(args, "--no-sync")
	}
	out, err := c.owner.command(ctx, filepath.Join(c.binDir, "initdb"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("running initdb in %s: %w\n%s", c.DataDir(), err, bytes.TrimSpace(out))
	}
	conf := filepath.Join(c.DataDir(), "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", conf, err)
	}
	_, werr := fmt.Fprintf(f, "\ninclude '%s'\n", confFile)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("adding include to %s: %w", conf, err)
	}
	return nil
}

// start writes the per-attempt settings and runs pg_ctl start. With a
// nextPort it takes the port from there and retries with another one when a
// different process bound the probed port first; without, c.port is fixed.
func (c *Cluster) start(ctx context.Context, nextPort func() (int, error), settings map[string]string) error {
	logPath := filepath.Join(c.dir, logFile)
	for attempt := 1; ; attempt++ {
		if nextPort != nil {
			p, err := nextPort()
			if err != nil {
				return err
			}
			c.port = p
		}
		if err := c.writeConf(settings); err != nil {
			return err
		}
		// A fresh log per attempt keeps an earlier bind failure from being
		// mistaken for the cause of a later one.
		if err := os.Remove(logPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing old server log: %w", err)
		}
		out, err := c.owner.command(ctx, filepath.Join(c.binDir, "pg_ctl"),
			"-D", c.DataDir(), "-l", logPath, "-w", "start").CombinedOutput()
		if err == nil {
			return nil
		}
		tail := logTail(logPath)
		if nextPort != nil && attempt < portAttempts && ctx.Err() == nil && strings.Contains(tail, "Address already in use") {
			c.logf("devdb: port %d was taken before postgres bound it; retrying", c.port)
			continue
		}
		return fmt.Errorf("starting postgres on 127.0.0.1:%d: %w\n%s\nserver log (%s):\n%s",
			c.port, err, bytes.TrimSpace(out), logPath, tail)
	}
}

func (c *Cluster) writeConf(settings map[string]string) error {
	var b strings.Builder
	b.WriteString("# Written by tasker's internal/devdb for this throwaway cluster.\n")
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = %s\n", c.port, quoteConf(c.dir))
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteConf(settings[k]))
	}
	path := filepath.Join(c.DataDir(), confFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := c.owner.chown(path); err != nil {
		return fmt.Errorf("handing %s to the postgres user: %w", path, err)
	}
	return nil
}

// waitReady connects with pgx because pg_ctl -w only proves the postmaster
// wrote "ready" to its pid file, not that TCP connections get through.
func (c *Cluster) waitReady(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	backoff := 10 * time.Millisecond
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attemptCtx, c.URL("postgres"))
		if err == nil {
			err = conn.Ping(attemptCtx)
			err = errors.Join(err, conn.Close(attemptCtx))
		}
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for postgres on 127.0.0.1:%d to accept connections: %w (last error: %v)\nserver log:\n%s",
				c.port, ctx.Err(), err, logTail(filepath.Join(c.dir, logFile)))
		case <-t.C:
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// reservedSetting explains why a setting cannot be overridden, or returns ""
// when it can: the URL and the socket dir depend on these.
func reservedSetting(name string) string {
	switch strings.ToLower(name) {
	case "port":
		return "set Options.Port instead"
	case "listen_addresses":
		return "devdb always listens on 127.0.0.1"
	case "unix_socket_directories":
		return "devdb puts the socket in its temp dir"
	}
	return ""
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

func serverSettings(opts Options) (map[string]string, error) {
	s := map[string]string{
		"max_connections": "200",
		"shared_buffers":  "128MB",
	}
	if !opts.Durable {
		s["fsync"] = "off"
		s["synchronous_commit"] = "off"
		s["full_page_writes"] = "off"
	}
	for k, v := range opts.Settings {
		if !settingName.MatchString(k) {
			return nil, fmt.Errorf("invalid postgres setting name %q", k)
		}
		if why := reservedSetting(k); why != "" {
			return nil, fmt.Errorf("postgres setting %q cannot be overridden: %s", k, why)
		}
		s[k] = v
	}
	return s, nil
}

// quoteConf quotes a value for postgresql.conf, where both backslash and
// single quote are special inside quotes.
func quoteConf(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, `'`, `''`) + "'"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port on 127.0.0.1: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("releasing probe port %d: %w", port, err)
	}
	return port, nil
}

// logTail returns the last lines of the server log for error messages.
func logTail(path string) string {
	const maxBytes, maxLines = 4096, 30
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

// reapStale removes clusters left by processes that died without calling
// Stop, so killed test runs do not pile up running servers. A directory is
// touched only when its owner file names a process that no longer exists.
func reapStale(ctx context.Context, binDir string, owner *osUser, logf func(string, ...any)) {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	if err != nil {
		return
	}
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		err = stopServer(stopCtx, binDir, filepath.Join(dir, "data"), owner)
		cancel()
		if err != nil {
			logf("devdb: leaving stale cluster %s of dead process %d: %v", dir, pid, err)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			logf("devdb: removing stale cluster %s: %v", dir, err)
			continue
		}
		logf("devdb: removed stale cluster %s of dead process %d", dir, pid)
	}
}

// FindBinDir returns the directory holding initdb, pg_ctl and postgres. It
// prefers PATH, then pg_config, then the newest Debian-style
// /usr/lib/postgresql/*/bin, because Debian keeps the server binaries off PATH.
func FindBinDir() (string, error) {
	var candidates []string
	if p, err := exec.LookPath("initdb"); err == nil {
		// /usr/local/bin/initdb may be a symlink into the versioned dir that
		// holds the other binaries.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(real))
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	candidates = append(candidates, debianBinDirs()...)
	for _, dir := range candidates {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres in one directory) not found " +
		"on PATH, via pg_config --bindir or in /usr/lib/postgresql/*/bin; install them " +
		"(Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15) " +
		"or pass --database-url / set DATABASE_URL to use an existing server")
}

func hasServerBinaries(dir string) bool {
	if dir == "" {
		return false
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// debianBinDirs lists /usr/lib/postgresql/*/bin, newest version first.
func debianBinDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sortNewestFirst(dirs)
	return dirs
}

// sortNewestFirst orders .../<version>/bin dirs by numeric version, so that
// 10 sorts above 9.6.
func sortNewestFirst(dirs []string) {
	version := func(dir string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(dir)), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				return nil
			}
			v = append(v, n)
		}
		return v
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		a, b := version(dirs[i]), version(dirs[j])
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] > b[k]
			}
		}
		return len(a) > len(b)
	})
}
