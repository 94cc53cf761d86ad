// Package templatestore registers task templates in the database
// (named_tasks.configuration) and reads them back: orchestration creates
// tasks only from templates some worker or operator registered.
package templatestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/template"
)

// ErrNotFound is returned for a template that is not registered.
var ErrNotFound = errors.New("template not registered")

// ErrConflict is returned by Register for a template whose namespace, name
// and version are registered with different content.
var ErrConflict = errors.New("this version is already registered with different content; give the changed template a new version")

// Registered is a template as stored, with its database identity.
type Registered struct {
	Template      *template.Template
	NamedTaskUUID uuid.UUID
	// NamedSteps maps step name to its named_steps row.
	NamedSteps map[string]uuid.UUID
}

// Register upserts tpl (validated by the caller), its namespace, its step
// names and its worker queue, in one transaction.
func Register(ctx context.Context, pool interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, qc *queue.Client, tpl *template.Template) error {
	cfg, err := json.Marshal(tpl)
	if err != nil {
		return fmt.Errorf("registering %s: encoding: %w", tpl.Key(), err)
	}
	wq, err := queue.WorkerQueue(tpl.Namespace)
	if err != nil {
		return fmt.Errorf("registering %s: %w", tpl.Key(), err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("registering %s: %w", tpl.Key(), err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var nsUUID uuid.UUID
	if err := tx.QueryRow(ctx, `INSERT INTO tasker.task_namespaces (task_namespace_uuid, name) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET updated_at = tasker.task_namespaces.updated_at
		RETURNING task_namespace_uuid`, newID(), tpl.Namespace).Scan(&nsUUID); err != nil {
		return fmt.Errorf("registering %s: namespace: %w", tpl.Key(), err)
	}
	// A version's content never changes once registered: running tasks and
	// other processes rely on it. Identical content is a no-op.
	var same *bool
	if err := tx.QueryRow(ctx, `WITH ins AS (
			INSERT INTO tasker.named_tasks (named_task_uuid, task_namespace_uuid, name, version, description, configuration)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (task_namespace_uuid, name, version) DO NOTHING
			RETURNING true)
		SELECT coalesce((SELECT true FROM ins),
			(SELECT configuration = $6::jsonb FROM tasker.named_tasks
			 WHERE task_namespace_uuid = $2 AND name = $3 AND version = $4))`,
		newID(), nsUUID, tpl.Name, tpl.Version, tpl.Description, cfg).Scan(&same); err != nil {
		return fmt.Errorf("registering %s: named task: %w", tpl.Key(), err)
	}
	if same == nil {
		// A concurrent registration committed after this statement's
		// snapshot was taken; a new statement sees it.
		if err := tx.QueryRow(ctx, `SELECT configuration = $4::jsonb FROM tasker.named_tasks
			WHERE task_namespace_uuid = $1 AND name = $2 AND version = $3`, nsUUID, tpl.Name, tpl.Version, cfg).Scan(&same); err != nil {
			return fmt.Errorf("registering %s: named task: %w", tpl.Key(), err)
		}
	}
	if !*same {
		return fmt.Errorf("registering %s: %w", tpl.Key(), ErrConflict)
	}
	names := make([]string, len(tpl.Steps))
	ids := make([]uuid.UUID, len(tpl.Steps))
	for i, s := range tpl.Steps {
		names[i], ids[i] = s.Name, newID()
	}
	if _, err := tx.Exec(ctx, `INSERT INTO tasker.named_steps (named_step_uuid, name)
		SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT (name) DO NOTHING`, ids, names); err != nil {
		return fmt.Errorf("registering %s: step names: %w", tpl.Key(), err)
	}
	if err := qc.Create(ctx, tx, wq); err != nil {
		return fmt.Errorf("registering %s: %w", tpl.Key(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("registering %s: %w", tpl.Key(), err)
	}
	return nil
}

// RegisterAll registers every template of tpls, stopping at the first error.
func RegisterAll(ctx context.Context, pool interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, qc *queue.Client, tpls []*template.Template) error {
	for _, t := range tpls {
		if err := Register(ctx, pool, qc, t); err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the registered template ns/name@version; an empty version
// means the highest registered one.
func Lookup(ctx context.Context, q db.Querier, ns, name, version string) (*Registered, error) {
	rows, err := q.Query(ctx, `SELECT nt.named_task_uuid, nt.version, nt.configuration
		FROM tasker.named_tasks nt JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
		WHERE ns.name = $1 AND nt.name = $2 AND ($3 = '' OR nt.version = $3)`, ns, name, version)
	if err != nil {
		return nil, fmt.Errorf("looking up template %s/%s: %w", ns, name, err)
	}
	type cand struct {
		id      uuid.UUID
		version string
		cfg     []byte
	}
	cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cand, error) {
		var c cand
		err := r.Scan(&c.id, &c.version, &c.cfg)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("looking up template %s/%s: %w", ns, name, err)
	}
	if len(cands) == 0 {
		return nil, ErrNotFound
	}
	sort.Slice(cands, func(i, j int) bool { return compareVersions(cands[i].version, cands[j].version) > 0 })
	c := cands[0]
	var tpl template.Template
	if err := json.Unmarshal(c.cfg, &tpl); err != nil {
		return nil, fmt.Errorf("decoding template %s/%s@%s: %w", ns, name, c.version, err)
	}
	reg := &Registered{Template: &tpl, NamedTaskUUID: c.id, NamedSteps: map[string]uuid.UUID{}}
	names := make([]string, len(tpl.Steps))
	for i, s := range tpl.Steps {
		names[i] = s.Name
	}
	srows, err := q.Query(ctx, `SELECT name, named_step_uuid FROM tasker.named_steps WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("looking up steps of %s: %w", tpl.Key(), err)
	}
	for srows.Next() {
		var n string
		var id uuid.UUID
		if err := srows.Scan(&n, &id); err != nil {
			srows.Close()
			return nil, fmt.Errorf("looking up steps of %s: %w", tpl.Key(), err)
		}
		reg.NamedSteps[n] = id
	}
	if err := srows.Err(); err != nil {
		return nil, fmt.Errorf("looking up steps of %s: %w", tpl.Key(), err)
	}
	for _, n := range names {
		if _, ok := reg.NamedSteps[n]; !ok {
			return nil, fmt.Errorf("template %s: step %q has no named_steps row", tpl.Key(), n)
		}
	}
	return reg, nil
}

// Exists reports whether any template of namespace ns is registered.
func NamespaceExists(ctx context.Context, q db.Querier, ns string) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tasker.task_namespaces WHERE name = $1)`, ns).Scan(&ok); err != nil {
		return false, fmt.Errorf("looking up namespace %s: %w", ns, err)
	}
	return ok, nil
}

// List returns every registered template, ordered by namespace, name, version.
func List(ctx context.Context, q db.Querier) ([]*template.Template, error) {
	rows, err := q.Query(ctx, `SELECT nt.configuration FROM tasker.named_tasks nt
		JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
		ORDER BY ns.name, nt.name, nt.version`)
	if err != nil {
		return nil, fmt.Errorf("listing templates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*template.Template, error) {
		var raw []byte
		if err := r.Scan(&raw); err != nil {
			return nil, err
		}
		var t template.Template
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, err
		}
		return &t, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing templates: %w", err)
	}
	return out, nil
}

func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return len(pa) - len(pb)
}

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// ErrMissingHandlers is returned (wrapped, naming them) by CheckHandlers.
var ErrMissingHandlers = errors.New("no handler registered")

// CheckHandlers fails when the newest version of any template registered in
// namespaces, or any template of extra, names a handler has does not know:
// a worker that started anyway would fail those steps one by one.
func CheckHandlers(ctx context.Context, q db.Querier, namespaces []string, extra []*template.Template, has func(string) bool) error {
	all, err := List(ctx, q)
	if err != nil {
		return err
	}
	serve := map[string]bool{}
	for _, ns := range namespaces {
		serve[ns] = true
	}
	newest := map[string]*template.Template{}
	for _, t := range all {
		if !serve[t.Namespace] {
			continue
		}
		k := t.Namespace + "/" + t.Name
		if cur, ok := newest[k]; !ok || compareVersions(t.Version, cur.Version) > 0 {
			newest[k] = t
		}
	}
	check := append([]*template.Template{}, extra...)
	for _, k := range slices.Sorted(maps.Keys(newest)) {
		check = append(check, newest[k])
	}
	var missing []string
	seen := map[string]bool{}
	for _, t := range check {
		if !serve[t.Namespace] {
			continue
		}
		for _, s := range t.Steps {
			if !has(s.Handler) && !seen[s.Handler] {
				seen[s.Handler] = true
				missing = append(missing, fmt.Sprintf("%q (step %s of %s)", s.Handler, s.Name, t.Key()))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w for %s", ErrMissingHandlers, strings.Join(missing, ", "))
	}
	return nil
}
