package template_test

import (
	"os"
	"testing"

	"github.com/taskerhq/tasker/template"
)

// Parsing and validating a template: registration and every template
// lookup that misses the cache decode one.
func BenchmarkParseMixedDAG(b *testing.B) {
	src, err := os.ReadFile("../examples/templates/mixed_dag.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		t, err := template.Parse(src)
		if err != nil {
			b.Fatal(err)
		}
		if err := t.Validate(nil); err != nil {
			b.Fatal(err)
		}
	}
}
