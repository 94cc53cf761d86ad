// Package rubyproc builds libtasker.so and runs tasker-ruby-worker processes
// from a checkout of the Tasker repository, for the commands that show or
// measure Ruby handlers (`tasker dev --ruby`, `tasker bench
// handler-overhead`).
package rubyproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const modulePath = "github.com/taskerhq/tasker"

// Paths inside the repository.
const (
	// LibraryRel is where the Ruby library looks for libtasker.so by default.
	LibraryRel = "workers/ruby/lib/tasker_core/libtasker.so"
	// WorkerRel is the Ruby worker executable.
	WorkerRel = "workers/ruby/bin/tasker-ruby-worker"
	// ExamplesRel registers the Ruby versions of the example handlers.
	ExamplesRel = "workers/ruby/examples/handlers.rb"
)

// RepoRoot walks up from the working directory to the Tasker module's root.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for dir := wd; ; {
		if isTaskerModule(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(dir, WorkerRel)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the Ruby worker needs a checkout of the Tasker repository: no %s above %s", WorkerRel, wd)
		}
		dir = parent
	}
}

func isTaskerModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == modulePath
		}
	}
	return false
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// CheckRuby reports, as an error saying what to install, whether ruby ≥ 3.1
// with the ffi gem is on PATH.
func CheckRuby(ctx context.Context) (string, error) {
	ruby, err := exec.LookPath("ruby")
	if err != nil {
		return "", errors.New("ruby is not installed: install Ruby ≥ 3.1 and the ffi gem (Debian: apt-get install ruby ruby-ffi)")
	}
	out, err := exec.CommandContext(ctx, ruby, "-rffi", "-e",
		`abort "Ruby #{RUBY_VERSION} is older than 3.1" if Gem::Version.new(RUBY_VERSION) < Gem::Version.new("3.1")`).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ruby ≥ 3.1 with the ffi gem is required (Debian: apt-get install ruby ruby-ffi): %s", strings.TrimSpace(string(out)))
	}
	return ruby, nil
}

// BuildLibrary builds libtasker.so from root's ffi/ into out with the go
// command on PATH (cached after the first build).
func BuildLibrary(ctx context.Context, root, out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building %s needs the go command: %w", out, err)
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-buildmode=c-shared", "-o", out, "./ffi")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", out, err, b)
	}
	return nil
}

// ReadyLine starts the line tasker-ruby-worker prints on stdout once it
// serves its namespaces.
const ReadyLine = "tasker-ruby-worker: serving "

// Config describes a tasker-ruby-worker process.
type Config struct {
	// Root is the repository root (required).
	Root string
	// Library is libtasker.so. Default: Root/LibraryRel.
	Library     string
	DatabaseURL string
	Namespaces  []string
	// Requires are the handler files (relative to Root or absolute).
	Requires    []string
	Concurrency int
	// Args are further worker flags; Env further NAME=value variables.
	Args []string
	Env  []string
	// Output receives the worker's stdout and stderr (nil: discarded).
	Output io.Writer
	// ReadyTimeout bounds the wait for the worker to run. Default 60s.
	ReadyTimeout time.Duration
}

// Worker is a running tasker-ruby-worker.
type Worker struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// Start starts the worker and waits until it serves its namespaces.
func Start(ctx context.Context, c Config) (*Worker, error) {
	ruby, err := CheckRuby(ctx)
	if err != nil {
		return nil, err
	}
	if c.Library == "" {
		c.Library = filepath.Join(c.Root, LibraryRel)
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 60 * time.Second
	}
	args := []string{filepath.Join(c.Root, WorkerRel), "--namespace", strings.Join(c.Namespaces, ",")}
	for _, r := range c.Requires {
		args = append(args, "--require", r)
	}
	if c.Concurrency > 0 {
		args = append(args, "--concurrency", strconv.Itoa(c.Concurrency))
	}
	args = append(args, c.Args...)
	cmd := exec.Command(ruby, args...)
	cmd.Dir = c.Root
	cmd.Env = append(os.Environ(), "TASKER_FFI_LIB="+c.Library, "DATABASE_URL="+c.DatabaseURL)
	cmd.Env = append(cmd.Env, c.Env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the Ruby worker: %w", err)
	}
	w := &Worker{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	var once sync.Once
	out := c.Output
	if out == nil {
		out = io.Discard
	}
	// The copier owns the pipe's read end and stops when the worker exits
	// (its writer is closed then); exited closes after it, so everything the
	// worker printed has been passed on by then.
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, ReadyLine) {
				once.Do(func() { close(ready) })
			}
			_, _ = fmt.Fprintln(out, line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		w.err = cmd.Wait()
		_ = pw.Close()
		<-copied
		close(w.exited)
	}()
	select {
	case <-ready:
		return w, nil
	case <-w.exited:
		return nil, fmt.Errorf("the Ruby worker exited before serving: %v", w.err)
	case <-time.After(c.ReadyTimeout):
	case <-ctx.Done():
	}
	_ = w.Kill()
	return nil, fmt.Errorf("the Ruby worker did not start serving within %s", c.ReadyTimeout)
}

// Pid is the worker's process ID.
func (w *Worker) Pid() int { return w.cmd.Process.Pid }

// Stop asks the worker to shut down gracefully (SIGTERM: steps in flight
// finish) and waits; when ctx ends first it kills it.
func (w *Worker) Stop(ctx context.Context) error {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
		if w.err != nil {
			return fmt.Errorf("the Ruby worker exited with %w", w.err)
		}
		return nil
	case <-ctx.Done():
		_ = w.Kill()
		return fmt.Errorf("the Ruby worker did not stop in time; killed it: %w", ctx.Err())
	}
}

// Kill ends the worker at once and waits for it.
func (w *Worker) Kill() error {
	_ = w.cmd.Process.Kill()
	<-w.exited
	return nil
}
