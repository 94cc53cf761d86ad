package template_test

import (
	"fmt"
	"strings"

	"github.com/taskerhq/tasker/template"
)

// A template is parsed and validated from YAML; its steps come out in
// dependency order.
func ExampleParse() {
	tpl, err := template.Parse([]byte(`
namespace: reports
name: daily
version: 1.0.0
steps:
  - name: fetch
    handler: reports.fetch
  - name: summarise
    handler: reports.summarise
    depends_on: [fetch]
    retry:
      max_attempts: 5
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, _ := tpl.Step("summarise")
	fmt.Println(tpl.Key(), tpl.TopoOrder(), s.Retry.MaxAttempts)
	// Output: reports/daily@1.0.0 [fetch summarise] 5
}

// Templates can be Go values too; Validate names every problem.
func ExampleTemplate_Validate() {
	tpl := &template.Template{Namespace: "reports", Name: "daily", Version: "1.0.0", Steps: []template.Step{
		template.NewStep("fetch", "reports.fetch", "store"),
		template.NewStep("store", "reports.store", "fetch"),
	}}
	err := tpl.Validate(func(name string) bool { return strings.HasSuffix(name, ".fetch") })
	fmt.Println(err)
	// Output:
	// template reports/daily@1.0.0: step "store": handler: no handler registered under "reports.store"
	// template reports/daily@1.0.0: step "fetch": depends_on: dependency cycle (each step depends on the next): fetch -> store -> fetch
}
