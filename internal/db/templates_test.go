package db_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
)

func TestRegisterTemplate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	v1 := db.TemplateRow{Namespace: "shipping", Name: "send", Version: "1.0.0", Description: "sends",
		Configuration: []byte(`{"name": "send", "steps": [{"name": "pack"}, {"name": "post"}]}`), StepNames: []string{"pack", "post"}}
	same, err := db.RegisterTemplate(ctx, e.pool, v1)
	require.NoError(t, err)
	require.True(t, same)
	same, err = db.RegisterTemplate(ctx, e.pool, v1)
	require.NoError(t, err)
	require.True(t, same, "the same content again is a no-op")
	require.Equal(t, 2, tableCount(t, e, "named_tasks"), "billing/charge and shipping/send")

	// The version registered with other content: refused, and its new step
	// names are not written.
	changed := v1
	changed.Configuration = []byte(`{"name": "send", "steps": [{"name": "pack"}, {"name": "weigh"}]}`)
	changed.StepNames = []string{"pack", "weigh"}
	same, err = db.RegisterTemplate(ctx, e.pool, changed)
	require.NoError(t, err)
	require.False(t, same)
	steps, err := db.NamedSteps(ctx, e.pool, []string{"pack", "post", "weigh"})
	require.NoError(t, err)
	require.Len(t, steps, 2)
	require.NotContains(t, steps, "weigh")

	v2 := changed
	v2.Version = "1.10.0"
	same, err = db.RegisterTemplate(ctx, e.pool, v2)
	require.NoError(t, err)
	require.True(t, same)
	steps, err = db.NamedSteps(ctx, e.pool, []string{"pack", "post", "weigh", "unknown"})
	require.NoError(t, err)
	require.Len(t, steps, 3, "names without a row are left out")
	for _, id := range steps {
		require.NotEqual(t, uuid.Nil, id)
	}
	require.Equal(t, 3, tableCount(t, e, "named_steps"), "pack is one row for both versions")
	require.Equal(t, 2, tableCount(t, e, "task_namespaces"))

	versions, err := db.TemplateVersions(ctx, e.pool, "shipping", "send", "")
	require.NoError(t, err)
	got := map[string]string{}
	for _, v := range versions {
		got[v.Version] = string(v.Configuration)
		require.NotEqual(t, uuid.Nil, v.NamedTaskUUID)
	}
	require.Len(t, got, 2)
	require.JSONEq(t, string(v1.Configuration), got["1.0.0"], "the first registration's content stays")
	require.JSONEq(t, string(v2.Configuration), got["1.10.0"])
	versions, err = db.TemplateVersions(ctx, e.pool, "shipping", "send", "1.10.0")
	require.NoError(t, err)
	require.Len(t, versions, 1)
	require.Equal(t, "1.10.0", versions[0].Version)
	versions, err = db.TemplateVersions(ctx, e.pool, "shipping", "send", "9.0.0")
	require.NoError(t, err)
	require.Empty(t, versions)
	versions, err = db.TemplateVersions(ctx, e.pool, "billing", "send", "")
	require.NoError(t, err)
	require.Empty(t, versions, "a name is looked up in its namespace")

	for ns, want := range map[string]bool{"shipping": true, "billing": true, "nowhere": false} {
		ok, err := db.NamespaceExists(ctx, e.pool, ns)
		require.NoError(t, err)
		require.Equal(t, want, ok, ns)
	}

	cfgs, err := db.TemplateConfigurations(ctx, e.pool)
	require.NoError(t, err)
	require.Len(t, cfgs, 3)
	require.JSONEq(t, `{}`, string(cfgs[0]), "billing/charge first")
	require.JSONEq(t, string(v1.Configuration), string(cfgs[1]), "then shipping/send by version")
	require.JSONEq(t, string(v2.Configuration), string(cfgs[2]))

	names, err := db.TemplateNames(ctx, e.pool)
	require.NoError(t, err)
	require.Equal(t, [][2]string{{"billing", "charge"}, {"shipping", "send"}}, names)
	stepNames, err := db.TemplateStepNames(ctx, e.pool)
	require.NoError(t, err)
	require.Equal(t, [][2]string{{"shipping", "pack"}, {"shipping", "post"}, {"shipping", "weigh"}}, stepNames)
}
