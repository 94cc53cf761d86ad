package template

import (
	"container/heap"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Defaults applied by Parse and UnmarshalJSON to fields the source omits.
const (
	DefaultMaxAttempts = 3
	DefaultBackoffBase = time.Second
	DefaultBackoffCap  = 30 * time.Second
	DefaultTimeout     = 30 * time.Second

	// MaxAttemptsLimit bounds Retry.MaxAttempts so that a typo cannot keep a
	// failing step cycling through the queues for days.
	MaxAttemptsLimit = 100
)

// Template is a parsed task template.
type Template struct {
	Namespace   string
	Name        string
	Version     string
	Description string
	Steps       []Step
}

// Step is one node of a template's DAG.
type Step struct {
	Name    string
	Handler string
	// DependsOn names the steps that must complete before this one runs.
	// Parse and UnmarshalJSON store an empty list as nil.
	DependsOn []string
	// Inputs is the handler initialization, passed to the handler as
	// StepContext.Inputs. Parse and UnmarshalJSON store it the way
	// encoding/json decodes it with UseNumber (numbers are json.Number, so
	// integers beyond 2^53 survive the JSON round trip through the database)
	// and store an empty object as nil.
	Inputs  map[string]any
	Retry   Retry
	Timeout time.Duration
}

// Retry is a step's retry policy.
type Retry struct {
	// MaxAttempts counts every attempt, the first included.
	MaxAttempts int
	// Retryable false means a failure is final even when attempts remain.
	Retryable   bool
	BackoffBase time.Duration
	BackoffCap  time.Duration
}

// The namespace ends up inside a queue name and a PostgreSQL table name, so
// it is restricted to short lower-case identifiers.
var (
	namespaceRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)
	nameRe      = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	stepNameRe  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,127}$`)
	handlerRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:/-]{0,127}$`)
	// Leading zeros are rejected so that a version has exactly one spelling
	// and string equality in the database means version equality; components
	// are capped at nine digits so that they always fit an int32 when
	// versions are compared numerically.
	versionRe = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$`)
)

// Key identifies the template as "namespace/name@version".
func (t *Template) Key() string {
	return t.Namespace + "/" + t.Name + "@" + t.Version
}

// Step returns the step called name. The pointer aliases t.Steps.
func (t *Template) Step(name string) (*Step, bool) {
	for i := range t.Steps {
		if t.Steps[i].Name == name {
			return &t.Steps[i], true
		}
	}
	return nil, false
}

// TopoOrder returns the step names so that every step comes after all of its
// dependencies. Among steps that are ready at the same time the one declared
// first comes first, so the order depends only on the template. For a
// template that fails Validate every step still appears exactly once, but
// steps on a cycle come last in declaration order.
func (t *Template) TopoOrder() []string {
	deps := t.graph()
	n := len(deps)
	indeg := make([]int, n)
	dependents := make([][]int, n)
	for i, ds := range deps {
		indeg[i] = len(ds)
		for _, d := range ds {
			dependents[d] = append(dependents[d], i)
		}
	}
	ready := &intHeap{}
	for i := range n {
		if indeg[i] == 0 {
			heap.Push(ready, i)
		}
	}
	order := make([]string, 0, n)
	placed := make([]bool, n)
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		placed[i] = true
		order = append(order, t.Steps[i].Name)
		for _, j := range dependents[i] {
			indeg[j]--
			if indeg[j] == 0 {
				heap.Push(ready, j)
			}
		}
	}
	for i := range n {
		if !placed[i] {
			order = append(order, t.Steps[i].Name)
		}
	}
	return order
}

// Roots returns, in declaration order, the steps without dependencies: the
// ones that are ready as soon as a task starts.
func (t *Template) Roots() []string {
	var roots []string
	for i, ds := range t.graph() {
		if len(ds) == 0 {
			roots = append(roots, t.Steps[i].Name)
		}
	}
	return roots
}

// Leaves returns, in declaration order, the steps no other step depends on:
// their results make up the task's result.
func (t *Template) Leaves() []string {
	deps := t.graph()
	hasDependent := make([]bool, len(deps))
	for _, ds := range deps {
		for _, d := range ds {
			hasDependent[d] = true
		}
	}
	var leaves []string
	for i := range deps {
		if !hasDependent[i] {
			leaves = append(leaves, t.Steps[i].Name)
		}
	}
	return leaves
}

// graph returns, per step index, the indexes of its dependencies. Unknown
// names, self-references and repeats are dropped so that the graph helpers
// behave sensibly even on templates that fail Validate (which reports those
// problems itself). With duplicate step names a name refers to its first
// declaration.
func (t *Template) graph() [][]int {
	index := make(map[string]int, len(t.Steps))
	for i := range t.Steps {
		if _, dup := index[t.Steps[i].Name]; !dup {
			index[t.Steps[i].Name] = i
		}
	}
	deps := make([][]int, len(t.Steps))
	for i := range t.Steps {
		seen := make(map[int]bool, len(t.Steps[i].DependsOn))
		for _, name := range t.Steps[i].DependsOn {
			d, ok := index[name]
			if !ok || d == i || seen[d] {
				continue
			}
			seen[d] = true
			deps[i] = append(deps[i], d)
		}
	}
	return deps
}

// cycles returns dependency cycles as step-index lists in which each step
// depends on the next and the last depends on the first. Each list starts at
// its earliest-declared step so that messages are stable.
func cycles(deps [][]int) [][]int {
	const (
		unvisited = iota
		onStack
		done
	)
	state := make([]int, len(deps))
	var stack []int
	var found [][]int
	var visit func(i int)
	visit = func(i int) {
		state[i] = onStack
		stack = append(stack, i)
		for _, d := range deps[i] {
			switch state[d] {
			case unvisited:
				visit(d)
			case onStack:
				start := len(stack) - 1
				for stack[start] != d {
					start--
				}
				found = append(found, rotateToMin(stack[start:]))
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
	}
	for i := range deps {
		if state[i] == unvisited {
			visit(i)
		}
	}
	return found
}

func rotateToMin(cycle []int) []int {
	m := 0
	for i, v := range cycle {
		if v < cycle[m] {
			m = i
		}
	}
	out := make([]int, 0, len(cycle))
	out = append(out, cycle[m:]...)
	return append(out, cycle[:m]...)
}

// ParseRef splits a template reference "NAMESPACE/NAME" or
// "NAMESPACE/NAME@VERSION"; version is empty when the reference has none.
func ParseRef(ref string) (namespace, name, version string, err error) {
	rest, ver, hasVersion := strings.Cut(ref, "@")
	ns, nm, ok := strings.Cut(rest, "/")
	switch {
	case !ok:
		return "", "", "", fmt.Errorf("template reference %q: want NAMESPACE/NAME or NAMESPACE/NAME@VERSION", ref)
	case !namespaceRe.MatchString(ns):
		return "", "", "", fmt.Errorf("template reference %q: invalid namespace %q: must match %s", ref, ns, namespaceRe)
	case !nameRe.MatchString(nm):
		return "", "", "", fmt.Errorf("template reference %q: invalid name %q: must match %s", ref, nm, nameRe)
	case hasVersion && !versionRe.MatchString(ver):
		return "", "", "", fmt.Errorf("template reference %q: invalid version %q: want MAJOR.MINOR.PATCH", ref, ver)
	}
	return ns, nm, ver, nil
}

// intHeap is a min-heap of step indexes; it makes TopoOrder prefer the
// earliest-declared ready step.
type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// NewStep returns a step with the defaults a YAML template's step gets
// (DefaultMaxAttempts retryable attempts, DefaultBackoffBase/Cap,
// DefaultTimeout), for templates built as Go values.
func NewStep(name, handler string, dependsOn ...string) Step {
	return Step{
		Name: name, Handler: handler, DependsOn: dependsOn,
		Retry:   Retry{MaxAttempts: DefaultMaxAttempts, Retryable: true, BackoffBase: DefaultBackoffBase, BackoffCap: DefaultBackoffCap},
		Timeout: DefaultTimeout,
	}
}

// Namespaces returns the distinct namespaces of tpls, in first-seen order:
// what a worker for those templates serves.
func Namespaces(tpls []*Template) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tpls {
		if !seen[t.Namespace] {
			seen[t.Namespace] = true
			out = append(out, t.Namespace)
		}
	}
	return out
}
