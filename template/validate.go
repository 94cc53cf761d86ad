package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ValidationError is one problem with a template. Parse, UnmarshalJSON and
// Validate return these joined with errors.Join; use errors.As to get the
// first one.
type ValidationError struct {
	// Template is the template's Key.
	Template string
	// Step is the step's name, "#N" (1-based position) for a step without
	// a name, or empty for a problem with the template as a whole.
	Step string
	// Field is the offending key as spelled in YAML, e.g. "depends_on" or
	// "retry.backoff.cap".
	Field string
	Msg   string
}

// Error names the template, the step and the field at fault.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("template ")
	b.WriteString(e.Template)
	if e.Step != "" {
		fmt.Fprintf(&b, ": step %q", e.Step)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Validate reports every structural problem of t joined into one error, or
// nil. When hasHandler is not nil it must report whether a handler name is
// registered (handler.Registry.Has fits), and unknown handlers are problems
// too; nil skips that check, for callers such as the orchestrator that do
// not run handlers.
func (t *Template) Validate(hasHandler func(name string) bool) error {
	return errors.Join(t.problems(hasHandler)...)
}

// problems is Validate's list before joining, so that fromRaw can add its
// conversion problems to the same flat list.
func (t *Template) problems(hasHandler func(name string) bool) []error {
	v := validator{key: t.Key()}

	checkIdent(&v, "", "namespace", t.Namespace, namespaceRe)
	checkIdent(&v, "", "name", t.Name, nameRe)
	switch {
	case t.Version == "":
		v.add("", "version", "required")
	case !versionRe.MatchString(t.Version):
		v.add("", "version", "invalid %q: want MAJOR.MINOR.PATCH, e.g. 1.0.0", t.Version)
	}
	if len(t.Steps) == 0 {
		v.add("", "steps", "a template needs at least one step")
	}

	firstByName := make(map[string]int, len(t.Steps))
	for i := range t.Steps {
		if _, dup := firstByName[t.Steps[i].Name]; !dup {
			firstByName[t.Steps[i].Name] = i
		}
	}
	for i := range t.Steps {
		v.step(i, &t.Steps[i], firstByName, hasHandler)
	}

	for _, cyc := range cycles(t.graph()) {
		names := make([]string, 0, len(cyc)+1)
		for _, i := range cyc {
			names = append(names, t.Steps[i].Name)
		}
		names = append(names, names[0])
		v.add(stepLabel(cyc[0], &t.Steps[cyc[0]]), "depends_on",
			"dependency cycle (each step depends on the next): %s", strings.Join(names, " -> "))
	}
	return v.errs
}

type validator struct {
	key  string
	errs []error
}

func (v *validator) add(step, field, format string, args ...any) {
	v.errs = append(v.errs, &ValidationError{Template: v.key, Step: step, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) step(i int, s *Step, firstByName map[string]int, hasHandler func(string) bool) {
	label := stepLabel(i, s)

	checkIdent(v, label, "name", s.Name, stepNameRe)
	if first := firstByName[s.Name]; s.Name != "" && first != i {
		v.add(label, "name", "duplicate step name (first used by step #%d)", first+1)
	}

	switch {
	case s.Handler == "":
		v.add(label, "handler", "required")
	case !handlerRe.MatchString(s.Handler):
		v.add(label, "handler", "invalid %q: must match %s", s.Handler, handlerRe)
	case hasHandler != nil && !hasHandler(s.Handler):
		v.add(label, "handler", "no handler registered under %q", s.Handler)
	}

	listed := make(map[string]bool, len(s.DependsOn))
	for _, dep := range s.DependsOn {
		switch _, known := firstByName[dep]; {
		case dep == "":
			v.add(label, "depends_on", "empty step name")
		case listed[dep]:
			v.add(label, "depends_on", "%q listed more than once", dep)
		case dep == s.Name:
			v.add(label, "depends_on", "step depends on itself")
		case !known:
			v.add(label, "depends_on", "unknown step %q", dep)
		}
		listed[dep] = true
	}

	if s.Inputs != nil {
		if _, err := json.Marshal(s.Inputs); err != nil {
			v.add(label, "inputs", "not encodable as JSON: %v", err)
		}
	}

	r := s.Retry
	if r.MaxAttempts < 1 || r.MaxAttempts > MaxAttemptsLimit {
		v.add(label, "retry.max_attempts", "must be between 1 and %d, got %d", MaxAttemptsLimit, r.MaxAttempts)
	}
	if r.BackoffBase < 0 {
		v.add(label, "retry.backoff.base", "must not be negative, got %s", r.BackoffBase)
	}
	if r.BackoffCap < r.BackoffBase {
		v.add(label, "retry.backoff.cap", "%s is less than base %s", r.BackoffCap, r.BackoffBase)
	}
	if s.Timeout <= 0 {
		v.add(label, "timeout", "must be positive, got %s", s.Timeout)
	}
}

func checkIdent(v *validator, step, field, value string, re *regexp.Regexp) {
	switch {
	case value == "":
		v.add(step, field, "required")
	case !re.MatchString(value):
		v.add(step, field, "invalid %q: must match %s", value, re)
	}
}

// stepLabel names a step in errors; a nameless step is named by position so
// that the message still points somewhere.
func stepLabel(i int, s *Step) string {
	if s.Name == "" {
		return fmt.Sprintf("#%d", i+1)
	}
	return s.Name
}
