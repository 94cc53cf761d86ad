package promtest

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// promtoolTimeout bounds one promtool run; they take milliseconds.
const promtoolTimeout = 2 * time.Minute

// Promtool runs `promtool args...` and returns its combined output; the
// error includes the output when promtool exits non-zero.
func Promtool(args ...string) (string, error) {
	bin, err := PromtoolBinary()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), promtoolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %v: %w\n%s", bin, args, err, out)
	}
	return string(out), nil
}

// CheckRulesOutput runs `promtool check rules files...`.
func CheckRulesOutput(files ...string) (string, error) {
	return Promtool(append([]string{"check", "rules"}, files...)...)
}

// CheckRules fails the test unless `promtool check rules files...` passes
// (every file parses, every expression is valid PromQL, every template
// parses). A missing promtool fails the test.
func CheckRules(t testing.TB, files ...string) {
	t.Helper()
	if len(files) == 0 {
		t.Fatal("promtest.CheckRules: no rule files")
	}
	out, err := CheckRulesOutput(files...)
	if err != nil {
		t.Fatalf("promtest: promtool check rules: %v", err)
	}
	t.Logf("promtool check rules:\n%s", out)
}

// CheckConfig fails the test unless `promtool check config file` passes; it
// also checks the rule files the configuration names.
func CheckConfig(t testing.TB, file string) {
	t.Helper()
	out, err := Promtool("check", "config", file)
	if err != nil {
		t.Fatalf("promtest: promtool check config: %v", err)
	}
	t.Logf("promtool check config:\n%s", out)
}

// TestRules fails the test unless `promtool test rules files...` passes:
// the rule unit tests (input series, expected alerts) in those files.
func TestRules(t testing.TB, files ...string) {
	t.Helper()
	out, err := Promtool(append([]string{"test", "rules"}, files...)...)
	if err != nil {
		t.Fatalf("promtest: promtool test rules: %v", err)
	}
	t.Logf("promtool test rules:\n%s", out)
}
