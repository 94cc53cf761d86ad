package examples_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/template"
)

func registry() *handler.Registry {
	r := handler.NewRegistry()
	if err := examples.Register(r); err != nil {
		panic(err)
	}
	return r
}

func templates(t *testing.T) map[string]*template.Template {
	t.Helper()
	tpls, err := examples.Templates()
	require.NoError(t, err)
	byRef := map[string]*template.Template{}
	for _, tpl := range tpls {
		byRef[tpl.Namespace+"/"+tpl.Name] = tpl
	}
	return byRef
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// stepContext builds what a worker would hand the handler of step s.
func stepContext(t *testing.T, tpl *template.Template, s *template.Step, taskContext any, results map[string]json.RawMessage, attempt int) *handler.StepContext {
	t.Helper()
	inputs := json.RawMessage(`{}`)
	if s.Inputs != nil {
		inputs = mustJSON(t, s.Inputs)
	}
	return &handler.StepContext{
		TaskUUID:          uuid.New(),
		StepUUID:          uuid.New(),
		StepName:          s.Name,
		Namespace:         tpl.Namespace,
		TaskName:          tpl.Name,
		TaskVersion:       tpl.Version,
		CorrelationID:     uuid.New(),
		Context:           mustJSON(t, taskContext),
		Inputs:            inputs,
		DependencyResults: results,
		Attempt:           attempt,
		MaxAttempts:       s.Retry.MaxAttempts,
	}
}

// ancestors returns every step name step transitively depends on.
func ancestors(tpl *template.Template, step string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(name string) {
		s, _ := tpl.Step(name)
		for _, d := range s.DependsOn {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(step)
	return seen
}

// run executes tpl's steps in topological order the way the orchestrator
// would, handing each step the results of all its ancestors, and returns
// every step's result as a decimal string.
func run(t *testing.T, reg *handler.Registry, tpl *template.Template, evenNumber int64) map[string]string {
	t.Helper()
	raw := map[string]json.RawMessage{}
	out := map[string]string{}
	for _, name := range tpl.TopoOrder() {
		s, _ := tpl.Step(name)
		deps := map[string]json.RawMessage{}
		for a := range ancestors(tpl, name) {
			deps[a] = raw[a]
		}
		h, ok := reg.Lookup(s.Handler)
		require.True(t, ok, s.Handler)
		res := call(h, stepContext(t, tpl, s, map[string]any{"even_number": evenNumber}, deps, 1))
		require.True(t, res.Success, "step %s: %+v", name, res.Error)
		raw[name] = mustJSON(t, res.Value)
		str, ok := res.Value.(string)
		require.True(t, ok, "step %s returned %T, want a decimal string", name, res.Value)
		out[name] = str
	}
	return out
}

func TestLinearChainByHand(t *testing.T) {
	reg := registry()
	tpl := templates(t)["linear_workflow/mathematical_sequence"]
	require.NotNil(t, tpl)
	h, ok := reg.Lookup("linear.square")
	require.True(t, ok)

	want := []string{"36", "1296", "1679616", "2821109907456"}
	results := map[string]json.RawMessage{}
	for i, name := range []string{"linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"} {
		s, ok := tpl.Step(name)
		require.True(t, ok)
		res := call(h, stepContext(t, tpl, s, map[string]any{"even_number": 6}, results, 1))
		require.True(t, res.Success, "%s: %+v", name, res.Error)
		require.Nil(t, res.Error)
		require.Equal(t, want[i], res.Value, name)
		// Like the worker, later steps see every earlier result, not only
		// their parent's.
		results[name] = mustJSON(t, res.Value)
	}
	require.JSONEq(t, `"2821109907456"`, string(results["linear_step_4"]))
}

func TestSquaringTemplatesProduceExpectedResults(t *testing.T) {
	reg := registry()
	tpls := templates(t)
	for _, ref := range []string{
		"linear_workflow/mathematical_sequence",
		"diamond_workflow/diamond_pattern",
		"tree_workflow/hierarchical_tree",
		"mixed_dag_workflow/complex_dag",
		"single_workflow/single_step",
	} {
		for _, n := range []int64{2, 6, 8, 100} {
			t.Run(fmt.Sprintf("%s/%d", ref, n), func(t *testing.T) {
				tpl := tpls[ref]
				require.NotNil(t, tpl)
				got := run(t, reg, tpl, n)
				want, ok := examples.ExpectedResult(tpl, n)
				require.True(t, ok)
				for leaf, v := range want {
					require.Equal(t, v, got[leaf], leaf)
				}
				require.ElementsMatch(t, tpl.Leaves(), keys(want))
			})
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestIntermediateResults(t *testing.T) {
	reg := registry()
	tpls := templates(t)

	got := run(t, reg, tpls["diamond_workflow/diamond_pattern"], 6)
	require.Equal(t, map[string]string{
		"diamond_start":    "36",
		"diamond_branch_b": "1296",
		"diamond_branch_c": "1296",
		"diamond_end":      "2821109907456",
	}, got)

	got = run(t, reg, tpls["mixed_dag_workflow/complex_dag"], 2)
	require.Equal(t, map[string]string{
		"dag_init":          "4",                    // 2^2
		"dag_process_left":  "16",                   // 2^4
		"dag_process_right": "16",                   // 2^4
		"dag_validate":      "65536",                // 2^16
		"dag_transform":     "256",                  // 2^8
		"dag_analyze":       "256",                  // 2^8
		"dag_finalize":      "18446744073709551616", // 2^64: one past uint64
	}, got)
}

func TestExpectedResult(t *testing.T) {
	tpls := templates(t)
	tests := []struct {
		ref  string
		n    int64
		want map[string]string
	}{
		{"linear_workflow/mathematical_sequence", 6, map[string]string{"linear_step_4": "2821109907456"}},
		{"linear_workflow/mathematical_sequence", 8, map[string]string{"linear_step_4": "281474976710656"}},
		{"diamond_workflow/diamond_pattern", 6, map[string]string{"diamond_end": "2821109907456"}},
		{"diamond_workflow/diamond_pattern", 8, map[string]string{"diamond_end": "281474976710656"}},
		{"tree_workflow/hierarchical_tree", 6, map[string]string{"tree_final_convergence": "63340286662973277706162286946811886609896461828096"}},
		{"tree_workflow/hierarchical_tree", 8, map[string]string{"tree_final_convergence": "6277101735386680763835789423207666416102355444464034512896"}},
		{"mixed_dag_workflow/complex_dag", 6, map[string]string{"dag_finalize": "63340286662973277706162286946811886609896461828096"}},
		{"mixed_dag_workflow/complex_dag", 8, map[string]string{"dag_finalize": "6277101735386680763835789423207666416102355444464034512896"}},
		{"single_workflow/single_step", 6, map[string]string{"only_step": "36"}},
		{"single_workflow/single_step", 8, map[string]string{"only_step": "64"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.ref, tc.n), func(t *testing.T) {
			got, ok := examples.ExpectedResult(tpls[tc.ref], tc.n)
			require.True(t, ok)
			require.Equal(t, tc.want, got)
		})
	}

	for _, ref := range []string{"retry_workflow/retry_mechanics", "retry_workflow/retry_exhaustion", "nested_workflow/parent_with_child"} {
		_, ok := examples.ExpectedResult(tpls[ref], 6)
		require.False(t, ok, ref)
	}
	linear := tpls["linear_workflow/mathematical_sequence"]
	for _, n := range []int64{0, 1, 7, 102, -6} {
		_, ok := examples.ExpectedResult(linear, n)
		require.False(t, ok, n)
	}
	// A template that shares the name but not the shape has no known answer.
	changed := *linear
	changed.Steps = changed.Steps[:3]
	_, ok := examples.ExpectedResult(&changed, 6)
	require.False(t, ok)
}

// result is one handler call's outcome, as the worker classifies it.
type result struct {
	Success bool
	Value   any
	Error   *handler.Error
}

func call(h handler.Handler, s *handler.StepContext) result {
	v, err := h.Handle(context.Background(), s)
	return result{Success: err == nil, Value: v, Error: handler.Classify(err)}
}

func requirePermanent(t *testing.T, res result, msg string) {
	t.Helper()
	require.False(t, res.Success)
	require.NotNil(t, res.Error)
	require.False(t, res.Error.Retryable, res.Error.Error())
	require.Equal(t, handler.ErrorTypePermanent, res.Error.Type)
	require.Contains(t, res.Error.Error(), msg)
}

func TestSquareRejectsBadInput(t *testing.T) {
	reg := registry()
	h, _ := reg.Lookup("single.square")
	root := func(ctx string) *handler.StepContext {
		return &handler.StepContext{StepName: "only_step", Context: json.RawMessage(ctx), Attempt: 1}
	}
	for _, tc := range []struct{ ctx, msg string }{
		{`{}`, `has no key "even_number"`},
		{`{"even_number": 7}`, "got 7"},
		{`{"even_number": 0}`, "got 0"},
		{`{"even_number": -2}`, "got -2"},
		{`{"even_number": 102}`, "got 102"},
		{`{"even_number": "6"}`, "even_number"},
		{`{"even_number": 6.5}`, "even_number"},
		{`{"even_number": null}`, "even_number is null"},
		{`[]`, "decoding task context"},
	} {
		t.Run(tc.ctx, func(t *testing.T) {
			requirePermanent(t, call(h, root(tc.ctx)), tc.msg)
		})
	}

	step := func(inputs string, deps map[string]json.RawMessage) *handler.StepContext {
		return &handler.StepContext{StepName: "s", Context: json.RawMessage(`{"even_number": 6}`), Inputs: json.RawMessage(inputs), DependencyResults: deps, Attempt: 1}
	}
	requirePermanent(t, call(h, step(`{}`, map[string]json.RawMessage{"p": json.RawMessage(`"36"`)})), "no inputs.operands")
	requirePermanent(t, call(h, step(`{"operands": ["p"]}`, nil)), `no result for dependency "p"`)
	requirePermanent(t, call(h, step(`{"operands": ["p"]}`, map[string]json.RawMessage{"p": json.RawMessage(`36`)})), `decoding result of dependency "p"`)
	requirePermanent(t, call(h, step(`{"operands": ["p"]}`, map[string]json.RawMessage{"p": json.RawMessage(`"-36"`)})), "not a decimal string")
	requirePermanent(t, call(h, step(`{"operands": ["p"]}`, map[string]json.RawMessage{"p": json.RawMessage(`""`)})), "not a decimal string")
	requirePermanent(t, call(h, step(`{"operands": "p"}`, nil)), "decoding inputs")

	// Repeated squaring of a huge operand is refused rather than allowed to
	// exhaust memory.
	huge := `"1` + string(slices.Repeat([]byte("0"), 200_000)) + `"`
	requirePermanent(t, call(h, step(`{"operands": ["p"]}`, map[string]json.RawMessage{"p": json.RawMessage(huge)})), "exceed")

	res := call(h, step(`{"operands": ["p", "q"]}`, map[string]json.RawMessage{"p": json.RawMessage(`"3"`), "q": json.RawMessage(`"5"`)}))
	require.True(t, res.Success)
	require.Equal(t, "225", res.Value)
}

func TestFailNTimes(t *testing.T) {
	reg := registry()
	tpls := templates(t)
	h, ok := reg.Lookup("retry.fail_n_times")
	require.True(t, ok)

	tpl := tpls["retry_workflow/retry_mechanics"]
	s, _ := tpl.Step("fail_twice_then_succeed")
	for attempt := 1; attempt <= 2; attempt++ {
		res := call(h, stepContext(t, tpl, s, map[string]any{}, nil, attempt))
		require.False(t, res.Success)
		require.NotNil(t, res.Error)
		require.True(t, res.Error.Retryable)
		require.Equal(t, handler.ErrorTypeRetryable, res.Error.Type)
		require.Contains(t, res.Error.Error(), fmt.Sprintf("attempt %d (this step fails its first 2 attempts)", attempt))
	}
	for _, attempt := range []int{3, 4} {
		res := call(h, stepContext(t, tpl, s, map[string]any{}, nil, attempt))
		require.True(t, res.Success)
		require.JSONEq(t, fmt.Sprintf(`{"attempts_before_success": %d}`, attempt), string(mustJSON(t, res.Value)))
	}

	// The exhaustion template fails on every attempt it is allowed.
	tpl = tpls["retry_workflow/retry_exhaustion"]
	s, _ = tpl.Step("always_fail")
	for attempt := 1; attempt <= s.Retry.MaxAttempts; attempt++ {
		res := call(h, stepContext(t, tpl, s, map[string]any{}, nil, attempt))
		require.False(t, res.Success)
		require.True(t, res.Error.Retryable)
	}

	zero := &handler.StepContext{StepName: "s", Inputs: json.RawMessage(`{"fail_count": 0}`), Attempt: 1}
	require.True(t, call(h, zero).Success)

	for _, tc := range []struct {
		inputs  string
		attempt int
		msg     string
	}{
		{`{}`, 1, `has no key "fail_count"`},
		{`{"fail_count": "two"}`, 1, "fail_count"},
		{`{"fail_count": -1}`, 1, "must not be negative"},
		{`{"fail_count": 2}`, 0, "invalid attempt number 0"},
	} {
		requirePermanent(t, call(h, &handler.StepContext{StepName: "s", Inputs: json.RawMessage(tc.inputs), Attempt: tc.attempt}), tc.msg)
	}
}

type fakeSubmitter struct {
	reqs []client.TaskRequest
	id   uuid.UUID
	err  error
}

func (f *fakeSubmitter) SubmitTask(_ context.Context, req client.TaskRequest) (uuid.UUID, error) {
	f.reqs = append(f.reqs, req)
	return f.id, f.err
}

func TestSpawnChild(t *testing.T) {
	reg := registry()
	tpl := templates(t)["nested_workflow/parent_with_child"]
	s, _ := tpl.Step("spawn_child")
	h, ok := reg.Lookup("nested.spawn_child")
	require.True(t, ok)

	sub := &fakeSubmitter{id: uuid.New()}
	sc := stepContext(t, tpl, s, map[string]any{"even_number": 8}, nil, 1)
	sc.SetTaskSubmitter(sub)
	res := call(h, sc)
	require.True(t, res.Success, "%+v", res.Error)
	require.JSONEq(t, fmt.Sprintf(`{"child_task_uuid": %q}`, sub.id), string(mustJSON(t, res.Value)))

	require.Len(t, sub.reqs, 1)
	req := sub.reqs[0]
	require.Equal(t, "linear_workflow", req.Namespace)
	require.Equal(t, "mathematical_sequence", req.Name)
	require.Equal(t, "1.0.0", req.Version)
	require.JSONEq(t, `{"even_number": 8}`, string(req.Context))
	require.NotNil(t, req.ParentCorrelationID)
	require.Equal(t, sc.CorrelationID, *req.ParentCorrelationID)
	require.NotNil(t, req.CorrelationID)
	require.NotEqual(t, sc.CorrelationID, *req.CorrelationID)

	// The child must be a template the examples ship.
	_, ok = templates(t)[req.Namespace+"/"+req.Name]
	require.True(t, ok)

	sub.err = errors.New("database unavailable")
	res = call(h, sc)
	require.False(t, res.Success)
	require.True(t, res.Error.Retryable)
	require.Contains(t, res.Error.Error(), "database unavailable")

	sc.SetTaskSubmitter(nil)
	requirePermanent(t, call(h, sc), "cannot submit tasks")

	sc.SetTaskSubmitter(&fakeSubmitter{})
	sc.Context = json.RawMessage(`{"even_number": 3}`)
	requirePermanent(t, call(h, sc), "got 3")

	sc.Context = json.RawMessage(`{"even_number": 6}`)
	sc.Inputs = json.RawMessage(`{"child": "not-a-ref"}`)
	requirePermanent(t, call(h, sc), "inputs.child")
	sc.Inputs = json.RawMessage(`{}`)
	requirePermanent(t, call(h, sc), `has no key "child"`)
}

// Every handler the templates name is registered, every registered handler
// is used, and the squaring steps multiply exactly their parents: the
// handlers cannot tell parents from other ancestors, so the operands list
// must repeat depends_on.
func TestTemplatesMatchHandlers(t *testing.T) {
	reg := registry()
	tpls, err := examples.Templates()
	require.NoError(t, err)
	require.Len(t, tpls, 8)

	used := map[string]bool{}
	for _, tpl := range tpls {
		require.NoError(t, tpl.Validate(reg.Has), tpl.Key())
		for _, s := range tpl.Steps {
			used[s.Handler] = true
			if _, fixed := examples.ExpectedResult(tpl, 6); !fixed {
				continue
			}
			var operands []string
			if ops, ok := s.Inputs["operands"].([]any); ok {
				for _, op := range ops {
					operands = append(operands, op.(string))
				}
			}
			require.Equal(t, s.DependsOn, operands, "%s step %s", tpl.Key(), s.Name)
		}
	}
	for _, name := range reg.Names() {
		require.True(t, used[name], "handler %s is registered but no template uses it", name)
	}
}
