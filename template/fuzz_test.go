package template_test

import (
	"encoding/json"
	"testing"

	"github.com/taskerhq/tasker/template"
)

// FuzzParse feeds arbitrary YAML to the template parser. Whatever it accepts
// must be a valid template that survives its JSON form (how templates are
// stored) unchanged and has a topological order naming every step once.
// Seeds: testdata/fuzz/FuzzParse plus the cases below.
func FuzzParse(f *testing.F) {
	f.Add([]byte("namespace: a\nname: b\nversion: 1.0.0\nsteps:\n  - name: s\n    handler: h\n"))
	f.Add([]byte("namespace: a\nname: b\nversion: 1.0.0\nsteps:\n  - {name: x, handler: h, depends_on: [y]}\n  - {name: y, handler: h, depends_on: [x]}\n"))
	f.Add([]byte("namespace: a\nname: b\nversion: 1.0.0\nsteps:\n  - name: s\n    handler: h\n    timeout: 5s\n    retry: {max_attempts: 3, backoff: {base: 1ms, cap: 1h}}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("steps: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tpl, err := template.Parse(data)
		if err != nil {
			return
		}
		if err := tpl.Validate(nil); err != nil {
			t.Fatalf("Parse accepted a template Validate rejects: %v", err)
		}
		order := tpl.TopoOrder()
		if len(order) != len(tpl.Steps) {
			t.Fatalf("topological order has %d steps, template %d", len(order), len(tpl.Steps))
		}
		seen := map[string]bool{}
		for _, name := range order {
			if seen[name] {
				t.Fatalf("step %q twice in topological order", name)
			}
			seen[name] = true
		}
		stored, err := json.Marshal(tpl)
		if err != nil {
			t.Fatalf("encoding a parsed template: %v", err)
		}
		var back template.Template
		if err := json.Unmarshal(stored, &back); err != nil {
			t.Fatalf("decoding a stored template: %v\n%s", err, stored)
		}
		again, err := json.Marshal(&back)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(stored) {
			t.Fatalf("template changed through its stored form:\n%s\n%s", stored, again)
		}
	})
}
