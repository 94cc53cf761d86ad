package db

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The statements of task templates: a template is a named_tasks row
// (namespace, name, version, its definition as configuration) under a
// task_namespaces row, and every step name it uses has a named_steps row.

// TemplateRow is one template version to register.
type TemplateRow struct {
	Namespace   string
	Name        string
	Version     string
	Description string
	// Configuration is the template's definition as JSON.
	Configuration []byte
	// StepNames are the names of the template's steps.
	StepNames []string
}

// RegisterTemplate writes p's namespace, the template version and its step
// names in the caller's transaction; each is left as it is when it exists.
// It reports whether the stored version's configuration is p's: when it is
// not (the version was registered with other content), nothing else is
// written and the caller refuses the registration.
func RegisterTemplate(ctx context.Context, q Querier, p TemplateRow) (same bool, err error) {
	key := p.Namespace + "/" + p.Name + "@" + p.Version
	var nsUUID uuid.UUID
	if err := q.QueryRow(ctx, `INSERT INTO tasker.task_namespaces (task_namespace_uuid, name) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET updated_at = tasker.task_namespaces.updated_at
		RETURNING task_namespace_uuid`, uuid.Must(uuid.NewV7()), p.Namespace).Scan(&nsUUID); err != nil {
		return false, fmt.Errorf("registering %s: namespace: %w", key, err)
	}
	var matches *bool
	if err := q.QueryRow(ctx, `WITH ins AS (
			INSERT INTO tasker.named_tasks (named_task_uuid, task_namespace_uuid, name, version, description, configuration)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (task_namespace_uuid, name, version) DO NOTHING
			RETURNING true)
		SELECT coalesce((SELECT true FROM ins),
			(SELECT configuration = $6::jsonb FROM tasker.named_tasks
			 WHERE task_namespace_uuid = $2 AND name = $3 AND version = $4))`,
		uuid.Must(uuid.NewV7()), nsUUID, p.Name, p.Version, p.Description, p.Configuration).Scan(&matches); err != nil {
		return false, fmt.Errorf("registering %s: named task: %w", key, err)
	}
	if matches == nil {
		// A concurrent registration committed after this statement's
		// snapshot was taken; a new statement sees it.
		if err := q.QueryRow(ctx, `SELECT configuration = $4::jsonb FROM tasker.named_tasks
			WHERE task_namespace_uuid = $1 AND name = $2 AND version = $3`, nsUUID, p.Name, p.Version, p.Configuration).Scan(&matches); err != nil {
			return false, fmt.Errorf("registering %s: named task: %w", key, err)
		}
	}
	if !*matches {
		return false, nil
	}
	ids := make([]uuid.UUID, len(p.StepNames))
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	if _, err := q.Exec(ctx, `INSERT INTO tasker.named_steps (named_step_uuid, name)
		SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT (name) DO NOTHING`, ids, p.StepNames); err != nil {
		return false, fmt.Errorf("registering %s: step names: %w", key, err)
	}
	return true, nil
}

// TemplateVersion is one registered version of a template.
type TemplateVersion struct {
	NamedTaskUUID uuid.UUID
	Version       string
	Configuration []byte
}

// TemplateVersions reads the registered versions of template ns/name, in no
// particular order (versions compare as numbers, which the caller does); a
// non-empty version reads only that one.
func TemplateVersions(ctx context.Context, q Querier, ns, name, version string) ([]TemplateVersion, error) {
	rows, err := q.Query(ctx, `SELECT nt.named_task_uuid, nt.version, nt.configuration
		FROM tasker.named_tasks nt JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
		WHERE ns.name = $1 AND nt.name = $2 AND ($3 = '' OR nt.version = $3)`, ns, name, version)
	if err != nil {
		return nil, fmt.Errorf("looking up template %s/%s: %w", ns, name, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TemplateVersion, error) {
		var v TemplateVersion
		err := r.Scan(&v.NamedTaskUUID, &v.Version, &v.Configuration)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("looking up template %s/%s: %w", ns, name, err)
	}
	return out, nil
}

// NamedSteps maps each of names that has a named_steps row to its id.
func NamedSteps(ctx context.Context, q Querier, names []string) (map[string]uuid.UUID, error) {
	rows, err := q.Query(ctx, `SELECT name, named_step_uuid FROM tasker.named_steps WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("reading named steps: %w", err)
	}
	out := make(map[string]uuid.UUID, len(names))
	var n string
	var id uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&n, &id}, func() error {
		out[n] = id
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading named steps: %w", err)
	}
	return out, nil
}

// NamespaceExists reports whether namespace ns is registered.
func NamespaceExists(ctx context.Context, q Querier, ns string) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tasker.task_namespaces WHERE name = $1)`, ns).Scan(&ok); err != nil {
		return false, fmt.Errorf("looking up namespace %s: %w", ns, err)
	}
	return ok, nil
}

// TemplateConfigurations reads every registered template version's
// configuration, ordered by namespace, name and version.
func TemplateConfigurations(ctx context.Context, q Querier) ([][]byte, error) {
	rows, err := q.Query(ctx, `SELECT nt.configuration FROM tasker.named_tasks nt
		JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
		ORDER BY ns.name, nt.name, nt.version`)
	if err != nil {
		return nil, fmt.Errorf("listing templates: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("listing templates: %w", err)
	}
	return out, nil
}

// TemplateNames lists the namespace/name pair of every registered template
// (any version), ordered.
func TemplateNames(ctx context.Context, q Querier) ([][2]string, error) {
	return pairs(ctx, q, "templates", `SELECT DISTINCT ns.name, nt.name FROM tasker.named_tasks nt
		JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid ORDER BY 1, 2`)
}

// TemplateStepNames lists the namespace/step name pairs of every registered
// template version's steps, ordered.
func TemplateStepNames(ctx context.Context, q Querier) ([][2]string, error) {
	return pairs(ctx, q, "template steps", `SELECT DISTINCT ns.name, s->>'name' FROM tasker.named_tasks nt
		JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid,
		jsonb_array_elements(nt.configuration->'steps') s WHERE s->>'name' IS NOT NULL ORDER BY 1, 2`)
}

func pairs(ctx context.Context, q Querier, what, sql string) ([][2]string, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		err := r.Scan(&p[0], &p[1])
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return out, nil
}
