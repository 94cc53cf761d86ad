package template_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/template"
)

const header = `namespace: ns
name: tpl
version: 1.0.0
`

func TestParseAppliesDefaults(t *testing.T) {
	tpl, err := template.Parse([]byte(header + `description: d
steps:
  - name: a
    handler: h.a
  - name: b
    handler: h.b
    depends_on: [a]
    inputs: {count: 2, big: 123456789012345678901234567890, nested: {list: [1, x, true]}}
    retry:
      max_attempts: 7
      retryable: false
      backoff: {base: 250ms, cap: 1m}
    timeout: 1.5s
`))
	require.NoError(t, err)
	require.Equal(t, &template.Template{
		Namespace:   "ns",
		Name:        "tpl",
		Version:     "1.0.0",
		Description: "d",
		Steps: []template.Step{
			{
				Name:    "a",
				Handler: "h.a",
				Retry: template.Retry{
					MaxAttempts: template.DefaultMaxAttempts,
					Retryable:   true,
					BackoffBase: template.DefaultBackoffBase,
					BackoffCap:  template.DefaultBackoffCap,
				},
				Timeout: template.DefaultTimeout,
			},
			{
				Name:      "b",
				Handler:   "h.b",
				DependsOn: []string{"a"},
				Inputs: map[string]any{
					"count":  json.Number("2"),
					"big":    json.Number("1.2345678901234568e+29"),
					"nested": map[string]any{"list": []any{json.Number("1"), "x", true}},
				},
				Retry:   template.Retry{MaxAttempts: 7, BackoffBase: 250 * time.Millisecond, BackoffCap: time.Minute},
				Timeout: 1500 * time.Millisecond,
			},
		},
	}, tpl)
	require.Equal(t, "ns/tpl@1.0.0", tpl.Key())
}

func TestParseNormalizesEmptyLists(t *testing.T) {
	tpl, err := template.Parse([]byte(header + `steps:
  - name: a
    handler: h
    depends_on: []
    inputs: {}
`))
	require.NoError(t, err)
	require.Nil(t, tpl.Steps[0].DependsOn)
	require.Nil(t, tpl.Steps[0].Inputs)
}

func TestParseRejectsMalformedYAML(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty document"},
		{"comment only", "# nothing\n", "empty document"},
		{"unknown top-level key", header + "stepz: []\n", "field stepz not found"},
		{"unknown step key", header + "steps:\n  - name: a\n    handler: h\n    max_attempts: 2\n", "field max_attempts not found"},
		{"unknown retry key", header + "steps:\n  - name: a\n    handler: h\n    retry: {max_atempts: 2}\n", "field max_atempts not found"},
		{"two documents", header + "steps: [{name: a, handler: h}]\n---\nname: other\n", "more than one YAML document"},
		{"wrong type", header + "steps:\n  - name: a\n    handler: h\n    retry: {max_attempts: lots}\n", "cannot unmarshal"},
		{"inputs not a mapping", header + "steps:\n  - name: a\n    handler: h\n    inputs: [1, 2]\n", "cannot unmarshal"},
		{"duplicate key", header + "name: again\nsteps: [{name: a, handler: h}]\n", `"name" already defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := template.Parse([]byte(tc.yaml))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidationErrors(t *testing.T) {
	// Each case is a YAML template with exactly one problem.
	tests := []struct {
		name  string
		yaml  string
		step  string
		field string
		msg   string
	}{
		{"missing namespace", "name: tpl\nversion: 1.0.0\nsteps: [{name: a, handler: h}]\n", "", "namespace", "required"},
		{"invalid namespace", "namespace: Bad-NS\nname: tpl\nversion: 1.0.0\nsteps: [{name: a, handler: h}]\n", "", "namespace", `invalid "Bad-NS"`},
		{"namespace too long", "namespace: " + "n" + strings.Repeat("x", 48) + "\nname: tpl\nversion: 1.0.0\nsteps: [{name: a, handler: h}]\n", "", "namespace", "invalid"},
		{"missing name", "namespace: ns\nversion: 1.0.0\nsteps: [{name: a, handler: h}]\n", "", "name", "required"},
		{"invalid name", "namespace: ns\nname: 9lives\nversion: 1.0.0\nsteps: [{name: a, handler: h}]\n", "", "name", `invalid "9lives"`},
		{"missing version", "namespace: ns\nname: tpl\nsteps: [{name: a, handler: h}]\n", "", "version", "required"},
		{"two-part version", "namespace: ns\nname: tpl\nversion: 1.0\nsteps: [{name: a, handler: h}]\n", "", "version", `invalid "1.0"`},
		{"leading zero version", "namespace: ns\nname: tpl\nversion: 1.02.0\nsteps: [{name: a, handler: h}]\n", "", "version", "invalid"},
		{"prerelease version", "namespace: ns\nname: tpl\nversion: 1.0.0-rc1\nsteps: [{name: a, handler: h}]\n", "", "version", "invalid"},
		{"no steps", header + "steps: []\n", "", "steps", "at least one step"},
		{"steps omitted", header, "", "steps", "at least one step"},
		{"missing step name", header + "steps: [{name: a, handler: h}, {handler: h}]\n", "#2", "name", "required"},
		{"invalid step name", header + "steps: [{name: Step-1, handler: h}]\n", "Step-1", "name", "invalid"},
		{"duplicate step name", header + "steps: [{name: a, handler: h}, {name: b, handler: h}, {name: a, handler: h}]\n", "a", "name", "duplicate step name (first used by step #1)"},
		{"missing handler", header + "steps: [{name: a}]\n", "a", "handler", "required"},
		{"invalid handler", header + "steps: [{name: a, handler: 'my handler'}]\n", "a", "handler", `invalid "my handler"`},
		{"unknown dependency", header + "steps: [{name: a, handler: h, depends_on: [zz]}]\n", "a", "depends_on", `unknown step "zz"`},
		{"empty dependency", header + "steps: [{name: a, handler: h, depends_on: ['']}]\n", "a", "depends_on", "empty step name"},
		{"self dependency", header + "steps: [{name: a, handler: h, depends_on: [a]}]\n", "a", "depends_on", "step depends on itself"},
		{"repeated dependency", header + "steps: [{name: a, handler: h}, {name: b, handler: h, depends_on: [a, a]}]\n", "b", "depends_on", `"a" listed more than once`},
		{"two-step cycle", header + "steps: [{name: a, handler: h, depends_on: [b]}, {name: b, handler: h, depends_on: [a]}]\n", "a", "depends_on", "dependency cycle (each step depends on the next): a -> b -> a"},
		{"cycle behind a root", header + `steps:
  - {name: r, handler: h}
  - {name: x, handler: h, depends_on: [r, z]}
  - {name: y, handler: h, depends_on: [x]}
  - {name: z, handler: h, depends_on: [y]}
`, "x", "depends_on", "x -> z -> y -> x"},
		{"zero attempts", header + "steps: [{name: a, handler: h, retry: {max_attempts: 0}}]\n", "a", "retry.max_attempts", "must be between 1 and 100, got 0"},
		{"too many attempts", header + "steps: [{name: a, handler: h, retry: {max_attempts: 101}}]\n", "a", "retry.max_attempts", "got 101"},
		{"negative base", header + "steps: [{name: a, handler: h, retry: {backoff: {base: -1s}}}]\n", "a", "retry.backoff.base", "must not be negative"},
		{"cap below base", header + "steps: [{name: a, handler: h, retry: {backoff: {base: 2s, cap: 1s}}}]\n", "a", "retry.backoff.cap", "1s is less than base 2s"},
		{"cap below default base", header + "steps: [{name: a, handler: h, retry: {backoff: {cap: 500ms}}}]\n", "a", "retry.backoff.cap", "500ms is less than base 1s"},
		{"malformed base", header + "steps: [{name: a, handler: h, retry: {backoff: {base: soon}}}]\n", "a", "retry.backoff.base", `invalid duration "soon"`},
		{"malformed cap", header + "steps: [{name: a, handler: h, retry: {backoff: {cap: 30}}}]\n", "a", "retry.backoff.cap", `invalid duration "30"`},
		{"zero timeout", header + "steps: [{name: a, handler: h, timeout: 0s}]\n", "a", "timeout", "must be positive, got 0s"},
		{"negative timeout", header + "steps: [{name: a, handler: h, timeout: -5s}]\n", "a", "timeout", "must be positive"},
		{"malformed timeout", header + "steps: [{name: a, handler: h, timeout: 30}]\n", "a", "timeout", `invalid duration "30"`},
		{"inputs with non-string keys", header + "steps: [{name: a, handler: h, inputs: {m: {1: x}}}]\n", "a", "inputs", "not encodable as JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := template.Parse([]byte(tc.yaml))
			require.Error(t, err)
			var ve *template.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tc.step, ve.Step, "error: %v", err)
			require.Equal(t, tc.field, ve.Field, "error: %v", err)
			require.Contains(t, ve.Msg, tc.msg)
			require.Len(t, strings.Split(err.Error(), "\n"), 1, "want exactly one problem, got: %v", err)
			require.True(t, strings.HasPrefix(err.Error(), "template "+ve.Template+": "), err.Error())
		})
	}
}

func TestValidationErrorMessage(t *testing.T) {
	tpl, err := template.Parse([]byte(`namespace: linear_workflow
name: mathematical_sequence
version: 1.0.0
steps:
  - {name: linear_step_1, handler: h}
  - {name: linear_step_2, handler: h, depends_on: [linear_step_1]}
  - {name: linear_step_3, handler: h, depends_on: [linear_step_2]}
`))
	require.NoError(t, err)
	tpl.Steps[2].DependsOn = []string{"linear_step_9"}
	require.EqualError(t, tpl.Validate(nil),
		`template linear_workflow/mathematical_sequence@1.0.0: step "linear_step_3": depends_on: unknown step "linear_step_9"`)

	tpl.Namespace = ""
	require.EqualError(t, tpl.Validate(nil),
		"template /mathematical_sequence@1.0.0: namespace: required\n"+
			`template /mathematical_sequence@1.0.0: step "linear_step_3": depends_on: unknown step "linear_step_9"`)
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := template.Parse([]byte(`namespace: ns
name: tpl
version: "1"
steps:
  - {name: a, handler: h, depends_on: [b], timeout: 0s}
  - {name: b, handler: h, depends_on: [a], retry: {max_attempts: 0}}
`))
	require.Error(t, err)
	require.Equal(t, []string{
		`template ns/tpl@1: version: invalid "1": want MAJOR.MINOR.PATCH, e.g. 1.0.0`,
		`template ns/tpl@1: step "a": timeout: must be positive, got 0s`,
		`template ns/tpl@1: step "b": retry.max_attempts: must be between 1 and 100, got 0`,
		`template ns/tpl@1: step "a": depends_on: dependency cycle (each step depends on the next): a -> b -> a`,
	}, strings.Split(err.Error(), "\n"))
}

func TestValidateHandlers(t *testing.T) {
	tpl, err := template.Parse([]byte(header + "steps: [{name: a, handler: known}, {name: b, handler: missing.one, depends_on: [a]}]\n"))
	require.NoError(t, err)
	require.NoError(t, tpl.Validate(nil))

	has := func(name string) bool { return name == "known" }
	err = tpl.Validate(has)
	var ve *template.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, template.ValidationError{Template: "ns/tpl@1.0.0", Step: "b", Field: "handler", Msg: `no handler registered under "missing.one"`}, *ve)
}

func TestValidateProgrammaticTemplate(t *testing.T) {
	tpl := &template.Template{Namespace: "ns", Name: "tpl", Version: "1.0.0", Steps: []template.Step{{
		Name:    "a",
		Handler: "h",
		Inputs:  map[string]any{"ch": make(chan int)},
		Retry:   template.Retry{MaxAttempts: 1, BackoffBase: time.Second, BackoffCap: time.Second},
		Timeout: time.Second,
	}}}
	var ve *template.ValidationError
	require.ErrorAs(t, tpl.Validate(nil), &ve)
	require.Equal(t, "inputs", ve.Field)

	tpl.Steps[0].Inputs = map[string]any{"n": 1}
	require.NoError(t, tpl.Validate(nil))
}

func mustParse(t *testing.T, src string) *template.Template {
	t.Helper()
	tpl, err := template.Parse([]byte(src))
	require.NoError(t, err)
	return tpl
}

func TestGraphHelpers(t *testing.T) {
	// The mixed DAG of the examples, declared out of execution order so that
	// TopoOrder has to reorder.
	tpl := mustParse(t, header+`steps:
  - {name: finalize, handler: h, depends_on: [validate, transform, analyze]}
  - {name: analyze, handler: h, depends_on: [right]}
  - {name: validate, handler: h, depends_on: [left, right]}
  - {name: init, handler: h}
  - {name: right, handler: h, depends_on: [init]}
  - {name: left, handler: h, depends_on: [init]}
  - {name: transform, handler: h, depends_on: [left]}
`)
	require.Equal(t, []string{"init", "right", "analyze", "left", "validate", "transform", "finalize"}, tpl.TopoOrder())
	require.Equal(t, []string{"init"}, tpl.Roots())
	require.Equal(t, []string{"finalize"}, tpl.Leaves())

	s, ok := tpl.Step("validate")
	require.True(t, ok)
	require.Equal(t, []string{"left", "right"}, s.DependsOn)
	s.Handler = "changed"
	require.Equal(t, "changed", tpl.Steps[2].Handler, "Step must alias the template's step")
	_, ok = tpl.Step("nope")
	require.False(t, ok)

	forest := mustParse(t, header+`steps:
  - {name: b, handler: h}
  - {name: a, handler: h}
  - {name: c, handler: h, depends_on: [a]}
`)
	require.Equal(t, []string{"b", "a", "c"}, forest.TopoOrder())
	require.Equal(t, []string{"b", "a"}, forest.Roots())
	require.Equal(t, []string{"b", "c"}, forest.Leaves())
}

func TestTopoOrderOfInvalidTemplateIsPermutation(t *testing.T) {
	tpl := &template.Template{Steps: []template.Step{
		{Name: "a", DependsOn: []string{"c"}},
		{Name: "b"},
		{Name: "c", DependsOn: []string{"a", "ghost"}},
		{Name: "d", DependsOn: []string{"d", "b"}},
	}}
	require.Equal(t, []string{"b", "d", "a", "c"}, tpl.TopoOrder())
	require.Equal(t, []string{"b"}, tpl.Roots())
	require.Equal(t, []string{"d"}, tpl.Leaves())
}

func TestJSONRoundTrip(t *testing.T) {
	tpl := mustParse(t, header+`description: round trip
steps:
  - name: a
    handler: h.a
  - name: b
    handler: h.b
    depends_on: [a]
    inputs: {n: 2, f: 0.1, big: 18446744073709551615, s: x, l: [1, {k: null}], o: {}}
    retry: {max_attempts: 9, retryable: false, backoff: {base: 1.5s, cap: 1h2m3.5s}}
    timeout: 90ms
`)
	data, err := json.Marshal(tpl)
	require.NoError(t, err)
	require.JSONEq(t, `{
		"namespace": "ns", "name": "tpl", "version": "1.0.0", "description": "round trip",
		"steps": [
			{"name": "a", "handler": "h.a", "depends_on": [], "inputs": {},
			 "retry": {"max_attempts": 3, "retryable": true, "backoff": {"base": "1s", "cap": "30s"}},
			 "timeout": "30s"},
			{"name": "b", "handler": "h.b", "depends_on": ["a"],
			 "inputs": {"n": 2, "f": 0.1, "big": 18446744073709551615, "s": "x", "l": [1, {"k": null}], "o": {}},
			 "retry": {"max_attempts": 9, "retryable": false, "backoff": {"base": "1.5s", "cap": "1h2m3.5s"}},
			 "timeout": "90ms"}
		]}`, string(data))

	var back template.Template
	require.NoError(t, json.Unmarshal(data, &back))
	require.Equal(t, *tpl, back)

	// Encoding a value (not a pointer) must use the same form.
	again, err := json.Marshal(back)
	require.NoError(t, err)
	require.Equal(t, data, again)
}

func TestUnmarshalJSON(t *testing.T) {
	var tpl template.Template
	require.NoError(t, json.Unmarshal([]byte(`{"namespace":"ns","name":"tpl","version":"1.0.0","steps":[{"name":"a","handler":"h"}]}`), &tpl))
	require.Equal(t, template.DefaultTimeout, tpl.Steps[0].Timeout, "omitted fields get defaults")
	require.True(t, tpl.Steps[0].Retry.Retryable)

	err := json.Unmarshal([]byte(`{"namespace":"ns","name":"tpl","version":"1.0.0","steps":[{"name":"a","handler":"h","extra":1}]}`), &tpl)
	require.ErrorContains(t, err, `unknown field "extra"`)

	err = json.Unmarshal([]byte(`{"namespace":"ns","name":"tpl","version":"1.0.0","steps":[{"name":"a","handler":"h","timeout":"0s"}]}`), &tpl)
	var ve *template.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "timeout", ve.Field)

	err = json.Unmarshal([]byte(`{"namespace":"ns","name":"tpl","version":"1.0.0","steps":[{"name":"a","handler":"h","timeout":30}]}`), &tpl)
	require.ErrorContains(t, err, "decoding template JSON")
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref, ns, name, version, err string
	}{
		{ref: "linear_workflow/mathematical_sequence", ns: "linear_workflow", name: "mathematical_sequence"},
		{ref: "linear_workflow/mathematical_sequence@1.0.0", ns: "linear_workflow", name: "mathematical_sequence", version: "1.0.0"},
		{ref: "ns/n@10.20.30", ns: "ns", name: "n", version: "10.20.30"},
		{ref: "", err: "want NAMESPACE/NAME"},
		{ref: "just_a_name", err: "want NAMESPACE/NAME"},
		{ref: "ns/", err: `invalid name ""`},
		{ref: "/name", err: `invalid namespace ""`},
		{ref: "ns/a/b", err: `invalid name "a/b"`},
		{ref: "NS/name", err: `invalid namespace "NS"`},
		{ref: "ns/name@", err: `invalid version ""`},
		{ref: "ns/name@1.0", err: `invalid version "1.0"`},
		{ref: "ns/name@1.0.0@2", err: `invalid version "1.0.0@2"`},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			ns, name, version, err := template.ParseRef(tc.ref)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.Contains(t, err.Error(), "template reference")
				return
			}
			require.NoError(t, err)
			require.Equal(t, []string{tc.ns, tc.name, tc.version}, []string{ns, name, version})
		})
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return dir
}

func tplYAML(name string) string {
	return "namespace: ns\nname: " + name + "\nversion: 1.0.0\nsteps: [{name: a, handler: h}]\n"
}

func TestLoadDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b.yml":          tplYAML("second"),
		"a.yaml":         tplYAML("first"),
		"notes.txt":      "not a template",
		"sub/c.yaml":     tplYAML("nested_ignored"),
		"z.yaml.disable": "ignored",
	})
	tpls, err := template.LoadDir(dir)
	require.NoError(t, err)
	require.Len(t, tpls, 2)
	require.Equal(t, "ns/first@1.0.0", tpls[0].Key())
	require.Equal(t, "ns/second@1.0.0", tpls[1].Key())

	empty, err := template.LoadDir(t.TempDir())
	require.NoError(t, err)
	require.Empty(t, empty)

	_, err = template.LoadDir(filepath.Join(dir, "missing"))
	require.ErrorContains(t, err, "reading template directory")
}

func TestLoadDirErrorsNameFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml":    tplYAML("dup"),
		"b.yaml":    tplYAML("dup"),
		"c.yaml":    "namespace: ns\nname: c\nversion: 1.0.0\nsteps: [{name: a, handler: h, timeout: 0s}]\n",
		"d.yml":     "namespace: [\n",
		"fine.yaml": tplYAML("fine"),
	})
	_, err := template.LoadDir(dir)
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 3, err.Error())
	require.Equal(t, `template file "`+filepath.Join(dir, "b.yaml")+`": template ns/dup@1.0.0 is already defined in "`+filepath.Join(dir, "a.yaml")+`"`, lines[0])
	require.Equal(t, `template file "`+filepath.Join(dir, "c.yaml")+`": template ns/c@1.0.0: step "a": timeout: must be positive, got 0s`, lines[1])
	require.True(t, strings.HasPrefix(lines[2], `template file "`+filepath.Join(dir, "d.yml")+`": parsing template YAML: `), lines[2])

	var ve *template.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "timeout", ve.Field)
}

func TestParseFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"ok.yaml": tplYAML("ok"), "bad.yaml": "namespace: ns\n"})
	tpl, err := template.ParseFile(filepath.Join(dir, "ok.yaml"))
	require.NoError(t, err)
	require.Equal(t, "ns/ok@1.0.0", tpl.Key())

	_, err = template.ParseFile(filepath.Join(dir, "bad.yaml"))
	require.ErrorContains(t, err, `template file "`+filepath.Join(dir, "bad.yaml")+`": template ns/@: name: required`)

	_, err = template.ParseFile(filepath.Join(dir, "missing.yaml"))
	require.True(t, errors.Is(err, os.ErrNotExist), err)
}
