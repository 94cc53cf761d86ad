package template_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/template"
)

// The shipped example templates are the ones e2e tests and benchmarks run,
// so they must parse, name only registered handlers and survive the trip
// through the database's JSON form.
func TestExampleTemplates(t *testing.T) {
	files, err := filepath.Glob("../examples/templates/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)

	reg := handler.NewRegistry()
	require.NoError(t, examples.Register(reg))

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			tpl, err := template.ParseFile(file)
			require.NoError(t, err)
			require.NoError(t, tpl.Validate(reg.Has))

			data, err := json.Marshal(tpl)
			require.NoError(t, err)
			var back template.Template
			require.NoError(t, json.Unmarshal(data, &back))
			require.Equal(t, *tpl, back)
		})
	}

	tpls, err := template.LoadDir("../examples/templates")
	require.NoError(t, err)
	require.Len(t, tpls, len(files))
}

func TestExampleShapes(t *testing.T) {
	tpls, err := template.LoadDir("../examples/templates")
	require.NoError(t, err)
	byKey := map[string]*template.Template{}
	for _, tpl := range tpls {
		byKey[tpl.Key()] = tpl
	}

	tests := []struct {
		key    string
		order  []string
		leaves []string
	}{
		{"linear_workflow/mathematical_sequence@1.0.0",
			[]string{"linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"},
			[]string{"linear_step_4"}},
		{"diamond_workflow/diamond_pattern@1.0.0",
			[]string{"diamond_start", "diamond_branch_b", "diamond_branch_c", "diamond_end"},
			[]string{"diamond_end"}},
		{"tree_workflow/hierarchical_tree@1.0.0",
			[]string{"tree_root", "tree_branch_left", "tree_branch_right", "tree_leaf_d", "tree_leaf_e", "tree_leaf_f", "tree_leaf_g", "tree_final_convergence"},
			[]string{"tree_final_convergence"}},
		{"mixed_dag_workflow/complex_dag@1.0.0",
			[]string{"dag_init", "dag_process_left", "dag_process_right", "dag_validate", "dag_transform", "dag_analyze", "dag_finalize"},
			[]string{"dag_finalize"}},
		{"retry_workflow/retry_mechanics@1.0.0", []string{"fail_twice_then_succeed"}, []string{"fail_twice_then_succeed"}},
		{"retry_workflow/retry_exhaustion@1.0.0", []string{"always_fail"}, []string{"always_fail"}},
		{"single_workflow/single_step@1.0.0", []string{"only_step"}, []string{"only_step"}},
		{"nested_workflow/parent_with_child@1.0.0", []string{"spawn_child"}, []string{"spawn_child"}},
	}
	require.Len(t, byKey, len(tests))
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			tpl := byKey[tc.key]
			require.NotNil(t, tpl)
			require.Equal(t, tc.order, tpl.TopoOrder())
			require.Equal(t, tc.leaves, tpl.Leaves())
			require.Equal(t, tc.order[:1], tpl.Roots())
		})
	}

	s, _ := byKey["retry_workflow/retry_exhaustion@1.0.0"].Step("always_fail")
	require.Equal(t, 3, s.Retry.MaxAttempts)
	require.Equal(t, map[string]any{"fail_count": json.Number("10")}, s.Inputs)
}
