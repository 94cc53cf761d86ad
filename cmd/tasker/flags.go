package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/client"
)

// globalFlags are the flags every API command reads; the root command binds
// them with bind.
type globalFlags struct {
	// APIURL is the server's base URL (--api, default $TASKER_API_URL, else defaultAPIURL).
	APIURL string
	// Output is outputText or outputJSON (--output).
	Output string
	// Token is the API's bearer token, from $TASKER_API_TOKEN only: a flag
	// would show it to every local user in the process list.
	Token string
}

const (
	defaultAPIURL = "http://127.0.0.1:8080"
	apiURLEnv     = "TASKER_API_URL"
	outputText    = "text"
	outputJSON    = "json"
)

// bind registers the global flags as persistent flags of root. getenv is
// os.Getenv in main; tests pass their own so they do not depend on the
// environment they run in.
func (g *globalFlags) bind(root *cobra.Command, getenv func(string) string) {
	apiURL := defaultAPIURL
	if v := getenv(apiURLEnv); v != "" {
		apiURL = v
	}
	root.PersistentFlags().StringVar(&g.APIURL, "api", apiURL, "base URL of the Tasker API (env "+apiURLEnv+"; its token: env "+client.TokenEnv+")")
	g.Token = getenv(client.TokenEnv)
	root.PersistentFlags().StringVarP(&g.Output, "output", "o", outputText, "output format: text or json")
}

// jsonOutput reports whether --output asks for JSON, rejecting unknown formats.
func (g *globalFlags) jsonOutput() (bool, error) {
	switch g.Output {
	case outputText, "":
		return false, nil
	case outputJSON:
		return true, nil
	}
	return false, usageError("--output must be %q or %q, got %q", outputText, outputJSON, g.Output)
}

// client returns a client of --api, rejecting a URL that cannot work before
// any request fails with a murkier error.
func (g *globalFlags) client() (*client.Client, error) {
	u, err := url.Parse(g.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError("--api must be an http(s) URL such as %s, got %q", defaultAPIURL, g.APIURL)
	}
	return client.New(g.APIURL, client.WithToken(g.Token)), nil
}

// Exit codes of the tasker command.
const (
	exitOK = 0
	// exitFailed: a task ended in a state other than complete (or did not
	// finish in time), a template failed validation, or the server failed.
	exitFailed = 1
	// exitUsage: bad flags, arguments or input, including a request the API
	// rejected with a 4xx answer.
	exitUsage = 2
	// exitUnreachable: the API could not be reached, or a gateway in front of
	// it said the server is unavailable (502, 503, 504).
	exitUnreachable = 3
)

// exitError is a command failure together with the process exit code it maps
// to. Commands return it (wrapped or not); main finds it with errors.As
// through exitCode. An error without one exits with exitFailed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake in what the user typed: exit code exitUsage.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failedError is a task or template that did not pass: exit code exitFailed.
func failedError(format string, args ...any) error {
	return &exitError{code: exitFailed, err: fmt.Errorf(format, args...)}
}

// apiCallError gives an error from package client the exit code its cause
// deserves: the user's request (4xx), the server (5xx) or the network.
func apiCallError(err error) error {
	var apiErr *client.APIError
	var urlErr *url.Error
	switch {
	case errors.As(err, &apiErr):
		switch {
		case apiErr.Status == http.StatusBadGateway || apiErr.Status == http.StatusServiceUnavailable || apiErr.Status == http.StatusGatewayTimeout:
			return &exitError{code: exitUnreachable, err: err}
		case apiErr.Status == http.StatusConflict || apiErr.Code == client.CodeNotFound:
			// The request was well formed; what it named is missing, or its
			// state refused it. (An unknown template is bad input: exit 2.)
			return &exitError{code: exitFailed, err: err}
		case apiErr.Status >= 400 && apiErr.Status < 500:
			return &exitError{code: exitUsage, err: err}
		}
		return &exitError{code: exitFailed, err: err}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return &exitError{code: exitFailed, err: err}
	case errors.As(err, &urlErr):
		return &exitError{code: exitUnreachable, err: fmt.Errorf("API unreachable: %w", err)}
	}
	return &exitError{code: exitFailed, err: err}
}

// exitCode is the process exit code for the error a command returned.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitFailed
}

// errorCodes names the exit codes in JSON errors that carry no API code.
var errorCodes = map[int]string{exitFailed: "failed", exitUsage: "usage", exitUnreachable: "unreachable"}

// reportJSONError writes err as {"error": {...}} for -o json readers.
func reportJSONError(w io.Writer, err error) {
	body := struct {
		Code     string `json:"code"`
		Field    string `json:"field,omitempty"`
		Message  string `json:"message"`
		ExitCode int    `json:"exit_code"`
	}{Code: errorCodes[exitCode(err)], Message: err.Error(), ExitCode: exitCode(err)}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		body.Code, body.Field, body.Message = apiErr.Code, apiErr.Field, apiErr.Message
	}
	_ = printJSON(w, map[string]any{"error": body})
}

// reportError writes err for a person: an API error as
// "error: <code> (<field>): <message>", anything else as "error: <text>".
func reportError(w io.Writer, err error) {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		_, _ = fmt.Fprintf(w, "error: %s\n", apiErr.Error())
		return
	}
	_, _ = fmt.Fprintf(w, "error: %v\n", err)
}

// execute runs root and returns the process exit code, reporting any error
// on root's stderr: main is os.Exit(execute(ctx, root)). Cobra's own error
// printing is silenced so that every error reads the same.
func execute(ctx context.Context, root *cobra.Command) int {
	root.SilenceErrors = true
	// Usage text would land on stdout, in the way of --output json readers;
	// usage errors point at --help instead (see usageFlagErrors).
	root.SilenceUsage = true
	err := root.ExecuteContext(ctx)
	if err != nil {
		if f := root.PersistentFlags().Lookup("output"); f != nil && f.Value.String() == outputJSON {
			reportJSONError(root.ErrOrStderr(), err)
		} else {
			reportError(root.ErrOrStderr(), err)
		}
	}
	return exitCode(err)
}

// usageFlagErrors makes cobra's flag parsing errors (unknown flag, bad
// value) exit with exitUsage; subcommands inherit it.
func usageFlagErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError("%w; run '%s --help' for usage", err, c.CommandPath())
	})
}

// usageArgs wraps a cobra argument validator so its errors exit with exitUsage.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError("%w; run '%s --help' for usage", err, cmd.CommandPath())
		}
		return nil
	}
}

// groupRunE is the RunE of a command that only groups subcommands: without
// it cobra prints help and exits 0 for a mistyped subcommand.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("unknown command %q for %q; run '%s --help' for usage", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return cmd.Help()
}

// printJSON writes v indented, for --output json.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
