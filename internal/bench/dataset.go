package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskerhq/tasker/template"
)

// Workflow shapes the generator builds templates of.
const (
	ShapeLinear   = "linear"
	ShapeDiamond  = "diamond"
	ShapeTree     = "tree"
	ShapeMixedDAG = "mixed_dag"
)

// AllShapes lists the shapes in their canonical order.
var AllShapes = []string{ShapeLinear, ShapeDiamond, ShapeTree, ShapeMixedDAG}

// Generated task states: the keys of a state mix.
const (
	GenComplete        = "complete"
	GenInProgress      = "in_progress"
	GenWaitingForRetry = "waiting_for_retry"
	GenError           = "error"
	GenPending         = "pending"
)

// GenStates lists the generated task states in their canonical order.
var GenStates = []string{GenComplete, GenInProgress, GenWaitingForRetry, GenError, GenPending}

// StateWeight is one entry of a state mix.
type StateWeight struct {
	State  string  `json:"state"`
	Weight float64 `json:"weight"`
}

// DefaultStateMix is the mix of a long-running installation: most tasks
// finished, a fifth running, some waiting out a retry backoff, a few failed
// and a few not yet picked up.
var DefaultStateMix = []StateWeight{
	{GenComplete, 60}, {GenInProgress, 20}, {GenWaitingForRetry, 10}, {GenError, 5}, {GenPending, 5},
}

// ParseStateMix parses "complete=60,in_progress=20,…". Weights are relative.
func ParseStateMix(s string) ([]StateWeight, error) {
	var mix []StateWeight
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not STATE=WEIGHT", part)
		}
		k = strings.TrimSpace(k)
		if !slices.Contains(GenStates, k) {
			return nil, fmt.Errorf("unknown state %q (want one of %s)", k, strings.Join(GenStates, ", "))
		}
		if seen[k] {
			return nil, fmt.Errorf("state %q given twice", k)
		}
		seen[k] = true
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || w < 0 || math.IsInf(w, 0) || math.IsNaN(w) {
			return nil, fmt.Errorf("weight of %s must be a number ≥ 0, got %q", k, v)
		}
		mix = append(mix, StateWeight{k, w})
	}
	if totalWeight(mix) <= 0 {
		return nil, fmt.Errorf("state mix %q has no positive weight", s)
	}
	return mix, nil
}

func totalWeight(mix []StateWeight) float64 {
	var t float64
	for _, w := range mix {
		t += w.Weight
	}
	return t
}

// FormatStateMix is the inverse of ParseStateMix.
func FormatStateMix(mix []StateWeight) string {
	parts := make([]string, len(mix))
	for i, w := range mix {
		parts[i] = w.State + "=" + strconv.FormatFloat(w.Weight, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// Weyl sequences (frac(x0 + i·α) with α irrational) spread any prefix of
// the task indexes over [0, 1) almost evenly, so every dataset size, and
// every dataset grown in steps, hits the state mix and the shape mix to
// within a couple of tasks, while each task's state depends on its index
// alone.
const (
	weylState = 0.6180339887498949 // 1/φ
	weylShape = 0.4142135623730951 // √2 − 1
)

func weyl(seed int64, salt uint64, alpha float64, i int) float64 {
	x0 := float64(rand.New(rand.NewPCG(uint64(seed), salt)).Uint64()>>11) / (1 << 53)
	_, f := math.Modf(x0 + float64(i+1)*alpha)
	return f
}

// pickState maps u ∈ [0, 1) onto the mix's cumulative weights.
func pickState(mix []StateWeight, u float64) string {
	total := totalWeight(mix)
	acc := 0.0
	for _, w := range mix {
		acc += w.Weight / total
		if u < acc {
			return w.State
		}
	}
	return mix[len(mix)-1].State
}

// minSteps is the smallest template of each shape.
var minSteps = map[string]int{ShapeLinear: 1, ShapeDiamond: 3, ShapeTree: 3, ShapeMixedDAG: 3}

// genTemplateName names the generated template of shape with n steps.
func genTemplateName(shape string, n int) string { return fmt.Sprintf("%s_%d_steps", shape, n) }

// ShapeOfTemplate returns the shape of a generated template name ("" if it
// is not one).
func ShapeOfTemplate(name string) string {
	rest, ok := strings.CutSuffix(name, "_steps")
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '_')
	if i < 0 {
		return ""
	}
	if _, err := strconv.Atoi(rest[i+1:]); err != nil {
		return ""
	}
	if s := rest[:i]; slices.Contains(AllShapes, s) {
		return s
	}
	return ""
}

// GenNamespace names the k-th generated namespace.
func GenNamespace(k int) string { return fmt.Sprintf("bench_gen_%02d", k) }

// GenHandler is the handler every generated step names; StepHandler
// implements it.
const GenHandler = "bench.generated_step"

// Generated steps retry with long backoffs so that a dataset stays the same
// while it is measured: a retry scheduled while the data was generated does
// not come due in the middle of a benchmark.
const (
	genBackoffBase = 10 * time.Minute
	genBackoffCap  = time.Hour
	genMaxAttempts = 3
)

// shapeParents returns, for a template of shape with n steps, the parents
// of each step (indexes into the step list, which is in topological order).
func shapeParents(shape string, n int) [][]int {
	p := make([][]int, n)
	switch shape {
	case ShapeLinear:
		for i := 1; i < n; i++ {
			p[i] = []int{i - 1}
		}
	case ShapeDiamond:
		// One start, n-2 parallel branches, one end joining them.
		for i := 1; i < n-1; i++ {
			p[i] = []int{0}
		}
		for i := 1; i < n-1; i++ {
			p[n-1] = append(p[n-1], i)
		}
	case ShapeTree:
		// A binary out-tree of n-1 steps, then one step converging its leaves.
		m := n - 1
		for i := 1; i < m; i++ {
			p[i] = []int{(i - 1) / 2}
		}
		for i := range m {
			if 2*i+1 >= m {
				p[n-1] = append(p[n-1], i)
			}
		}
	case ShapeMixedDAG:
		// Each step after the first depends on one or two earlier ones (fan-out,
		// fan-in and independent chains mixed); the last joins every step no
		// other depends on. Seeded by n so the template is fixed.
		r := rand.New(rand.NewPCG(uint64(n), 0x6d69786564))
		hasChild := make([]bool, n)
		for i := 1; i < n-1; i++ {
			a := r.IntN(i)
			p[i] = []int{a}
			hasChild[a] = true
			if i > 1 && r.IntN(3) == 0 {
				if b := r.IntN(i); b != a {
					p[i] = append(p[i], b)
					hasChild[b] = true
				}
			}
			slices.Sort(p[i])
		}
		for i := range n - 1 {
			if !hasChild[i] {
				p[n-1] = append(p[n-1], i)
			}
		}
	}
	return p
}

// buildTemplate returns the generated template of shape with n steps in namespace ns.
func buildTemplate(ns, shape string, n int) *template.Template {
	parents := shapeParents(shape, n)
	t := &template.Template{Namespace: ns, Name: genTemplateName(shape, n), Version: "1.0.0",
		Description: fmt.Sprintf("Generated %s workflow of %d steps (tasker bench generate).", shape, n)}
	for i := range n {
		s := template.Step{Name: fmt.Sprintf("gen_step_%02d", i+1), Handler: GenHandler,
			Retry: template.Retry{MaxAttempts: genMaxAttempts, Retryable: true,
				BackoffBase: genBackoffBase, BackoffCap: genBackoffCap},
			Timeout: template.DefaultTimeout}
		for _, p := range parents[i] {
			s.DependsOn = append(s.DependsOn, fmt.Sprintf("gen_step_%02d", p+1))
		}
		t.Steps = append(t.Steps, s)
	}
	return t
}

// The 10-step fan-out of the discovery → publish critical path: one root and
// nine steps that all become ready when it completes.
const (
	fanOutNamespace = "bench_fan_out"
	fanOutName      = "fan_out_10"
)

func fanOutTemplate() *template.Template {
	t := &template.Template{Namespace: fanOutNamespace, Name: fanOutName, Version: "1.0.0",
		Description: "One root step fanning out to nine parallel steps (tasker bench critical-paths)."}
	t.Steps = append(t.Steps, template.Step{Name: "fan_out_root", Handler: GenHandler,
		Retry: template.Retry{MaxAttempts: 1}, Timeout: template.DefaultTimeout})
	for i := 1; i <= 9; i++ {
		t.Steps = append(t.Steps, template.Step{Name: fmt.Sprintf("fan_out_branch_%d", i), Handler: GenHandler,
			DependsOn: []string{"fan_out_root"}, Retry: template.Retry{MaxAttempts: 1}, Timeout: template.DefaultTimeout})
	}
	return t
}
