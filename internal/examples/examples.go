// Package examples implements the handlers of the example templates in
// examples/templates (the squaring workflows Tasker's end-to-end tests and
// benchmarks run) and knows the answers those workflows must produce.
package examples

import (
	"fmt"
	"math/big"

	embedded "github.com/taskerhq/tasker/examples"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/template"
)

// Handler names used by examples/templates.
const (
	linearSquare   = "linear.square"
	diamondSquare  = "diamond.square"
	treeSquare     = "tree.square"
	mixedDAGSquare = "mixed_dag.square"
	singleSquare   = "single.square"
	failNTimesName = "retry.fail_n_times"
	spawnChildName = "nested.spawn_child"
)

// Handlers returns every example handler under the name the example
// templates use.
func Handlers() map[string]handler.Handler {
	hs := map[string]handler.Handler{
		failNTimesName: handler.Func(failNTimes),
		spawnChildName: handler.Func(spawnChild),
	}
	// One implementation serves every squaring workflow; the per-workflow
	// names keep metrics and logs telling the workflows apart.
	for _, name := range []string{linearSquare, diamondSquare, treeSquare, mixedDAGSquare, singleSquare} {
		hs[name] = handler.Func(square)
	}
	return hs
}

// Register adds every example handler to r. It fails if r already has a
// handler of one of their names.
func Register(r *handler.Registry) error {
	for name, h := range Handlers() {
		if err := r.Register(name, h); err != nil {
			return err
		}
	}
	return nil
}

// Templates parses the embedded example templates, in file name order. Each
// call returns fresh values the caller may modify.
func Templates() ([]*template.Template, error) {
	tpls, err := template.LoadFS(embedded.Templates, "templates")
	if err != nil {
		return nil, fmt.Errorf("loading example templates: %w", err)
	}
	return tpls, nil
}

// ExpectedResult returns the decimal result each leaf step of a squaring
// example must produce for the given even_number. ok is false for templates
// without a fixed answer (retry, nested), for a template whose leaves differ
// from the shipped example, and for an even_number the handlers reject.
func ExpectedResult(tpl *template.Template, evenNumber int64) (map[string]string, bool) {
	if checkEvenNumber(evenNumber) != nil {
		return nil, false
	}
	// Closed forms rather than a replay of the DAG, so that the answer is an
	// independent check of the handlers and the orchestration.
	var (
		leaf     string
		exponent int64
	)
	switch tpl.Namespace + "/" + tpl.Name {
	case "linear_workflow/mathematical_sequence":
		leaf, exponent = "linear_step_4", 16
	case "diamond_workflow/diamond_pattern":
		leaf, exponent = "diamond_end", 16
	case "tree_workflow/hierarchical_tree":
		leaf, exponent = "tree_final_convergence", 64
	case "mixed_dag_workflow/complex_dag":
		leaf, exponent = "dag_finalize", 64
	case "single_workflow/single_step":
		leaf, exponent = "only_step", 2
	default:
		return nil, false
	}
	if leaves := tpl.Leaves(); len(leaves) != 1 || leaves[0] != leaf {
		return nil, false
	}
	v := new(big.Int).Exp(big.NewInt(evenNumber), big.NewInt(exponent), nil)
	return map[string]string{leaf: v.String()}, true
}

// IsExample reports whether tpl is one of the shipped example templates (by
// namespace, name and version).
func IsExample(tpl *template.Template) bool {
	tpls, err := Templates()
	if err != nil {
		return false
	}
	for _, t := range tpls {
		if t.Key() == tpl.Key() {
			return true
		}
	}
	return false
}
