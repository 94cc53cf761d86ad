package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/rubyproc"
)

// devRuby is `tasker dev --ruby`: a tasker-ruby-worker process serving some
// example namespaces with the Ruby handlers, next to the in-process Go worker
// serving the others. The nested example then runs a Go handler whose child
// task runs in Ruby, in one trace.
type devRuby struct {
	enabled    bool
	namespaces []string
	lib        string
}

func (r *devRuby) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&r.enabled, "ruby", false, "serve --ruby-namespaces with a Ruby worker (workers/ruby; needs Ruby ≥ 3.1, the ffi gem and a checkout of the repository)")
	fl.StringSliceVar(&r.namespaces, "ruby-namespaces", []string{"linear_workflow", "diamond_workflow"}, "namespaces the Ruby worker serves with --ruby")
	fl.StringVar(&r.lib, "ffi-lib", "", "libtasker.so for --ruby (default: build it from ffi/)")
}

// start starts the Ruby worker when --ruby is set and returns the namespaces
// left to the Go worker and the function that stops the Ruby worker
// (gracefully: steps in flight finish).
func (r *devRuby) start(ctx context.Context, out, logOut io.Writer, url, logLevel string, all []string) ([]string, func() error, error) {
	if !r.enabled {
		return all, func() error { return nil }, nil
	}
	for _, ns := range r.namespaces {
		if !slices.Contains(all, ns) {
			return nil, nil, usageError("--ruby-namespaces: %q is not a namespace dev registers (%s)", ns, strings.Join(all, ", "))
		}
	}
	root, err := rubyproc.RepoRoot()
	if err != nil {
		return nil, nil, &exitError{code: exitFailed, err: err}
	}
	if _, err := rubyproc.CheckRuby(ctx); err != nil {
		return nil, nil, &exitError{code: exitFailed, err: err}
	}
	lib, cleanup := r.lib, func() {}
	if lib == "" {
		dir, err := os.MkdirTemp("", "tasker-ffi-")
		if err != nil {
			return nil, nil, err
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
		lib = filepath.Join(dir, "libtasker.so")
		fmt.Fprintln(out, "building libtasker.so from ffi/ (a minute the first time, cached after)…")
		if err := rubyproc.BuildLibrary(ctx, root, lib); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	var args []string
	if logLevel != "" {
		args = append(args, "--log-level", logLevel)
	}
	w, err := rubyproc.Start(ctx, rubyproc.Config{Root: root, Library: lib, DatabaseURL: url, Namespaces: r.namespaces,
		Requires: []string{rubyproc.ExamplesRel}, Args: args, Output: logOut, Env: devProfileEnv()})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	fmt.Fprintf(out, "Ruby worker (pid %d, %s) serves %s with the Ruby handlers in %s;\n  the Go worker serves the rest (nested_workflow's Go handler starts a child task that runs in Ruby, in the same trace)\n",
		w.Pid(), lib, strings.Join(r.namespaces, ", "), rubyproc.ExamplesRel)
	var goNS []string
	for _, ns := range all {
		if !slices.Contains(r.namespaces, ns) {
			goNS = append(goNS, ns)
		}
	}
	stop := func() error {
		defer cleanup()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return w.Stop(sctx)
	}
	return goNS, stop, nil
}

// devProfileEnv hands tasker dev's development profile to the processes it
// starts, which would otherwise default to production.
func devProfileEnv() []string {
	if os.Getenv("TASKER_ENV") != "" {
		return nil
	}
	return []string{"TASKER_ENV=development"}
}
