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
	names := make([]string, len(tpl.Steps))
	for i, s := range tpl.Steps {
		names[i] = s.Name
	}
	// A version's content never changes once registered: running tasks and
	// other processes rely on it. Identical content is a no-op.
	same, err := db.RegisterTemplate(ctx, tx, db.TemplateRow{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version,
		Description: tpl.Description, Configuration: cfg, StepNames: names})
	if err != nil {
		return err
	}
	if !same {
		return fmt.Errorf("registering %s: %w", tpl.Key(), ErrConflict)
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
	cands, err := db.TemplateVersions(ctx, q, ns, name, version)
	if err != nil {
		return nil, err
	}
	if len(cands) == 0 {
		return nil, ErrNotFound
	}
	sort.Slice(cands, func(i, j int) bool { return compareVersions(cands[i].Version, cands[j].Version) > 0 })
	c := cands[0]
	var tpl template.Template
	if err := json.Unmarshal(c.Configuration, &tpl); err != nil {
		return nil, fmt.Errorf("decoding template %s/%s@%s: %w", ns, name, c.Version, err)
	}
	names := make([]string, len(tpl.Steps))
	for i, s := range tpl.Steps {
		names[i] = s.Name
	}
	steps, err := db.NamedSteps(ctx, q, names)
	if err != nil {
		return nil, fmt.Errorf("looking up steps of %s: %w", tpl.Key(), err)
	}
	for _, n := range names {
		if _, ok := steps[n]; !ok {
			return nil, fmt.Errorf("template %s: step %q has no named_steps row", tpl.Key(), n)
		}
	}
	return &Registered{Template: &tpl, NamedTaskUUID: c.NamedTaskUUID, NamedSteps: steps}, nil
}

// NamespaceExists reports whether any template of namespace ns is registered.
func NamespaceExists(ctx context.Context, q db.Querier, ns string) (bool, error) {
	return db.NamespaceExists(ctx, q, ns)
}

// List returns every registered template, ordered by namespace, name, version.
func List(ctx context.Context, q db.Querier) ([]*template.Template, error) {
	cfgs, err := db.TemplateConfigurations(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]*template.Template, len(cfgs))
	for i, raw := range cfgs {
		var t template.Template
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, fmt.Errorf("listing templates: %w", err)
		}
		out[i] = &t
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
