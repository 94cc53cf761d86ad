package dbtest

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func databaseName(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	var exists bool
	err := current.admin.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		t.Fatal(err)
	}
	return exists
}

func TestNewDatabaseIsMigratedAndDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("use", func(t *testing.T) {
		dbURL := NewDatabase(t)
		name = databaseName(t, dbURL)
		if !regexp.MustCompile(`^t_[0-9a-f]{16}$`).MatchString(name) {
			t.Errorf("database name %q is not t_ + 16 hex digits", name)
		}
		conn, err := pgx.Connect(t.Context(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: the drop must not depend on tests closing
		// their connections.
		var applied int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM public.tasker_schema_migrations WHERE version_id > 0").Scan(&applied); err != nil {
			t.Fatalf("reading migration table: %v", err)
		}
		if applied == 0 {
			t.Error("no migrations applied in the cloned database")
		}
		var hasTasks bool
		if err := conn.QueryRow(t.Context(), "SELECT to_regclass('tasker.tasks') IS NOT NULL").Scan(&hasTasks); err != nil {
			t.Fatal(err)
		}
		if !hasTasks {
			t.Error("tasker.tasks missing in the cloned database")
		}
		if !databaseExists(t, name) {
			t.Fatalf("database %s does not exist during the test", name)
		}
	})
	if name == "" {
		t.Fatal("subtest did not create a database")
	}
	if databaseExists(t, name) {
		t.Errorf("database %s still exists after its test finished", name)
	}
}

func TestNewPoolIsolatedAndTaskerSearchPath(t *testing.T) {
	a, b := NewPool(t), NewPool(t)
	ctx := t.Context()
	var searchPath string
	if err := a.QueryRow(ctx, "SHOW search_path").Scan(&searchPath); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(searchPath, "tasker") {
		t.Errorf("search_path = %q, want tasker first", searchPath)
	}
	if _, err := a.Exec(ctx, "CREATE TABLE public.isolation_probe (x int)"); err != nil {
		t.Fatal(err)
	}
	var visible bool
	if err := b.QueryRow(ctx, "SELECT to_regclass('public.isolation_probe') IS NOT NULL").Scan(&visible); err != nil {
		t.Fatal(err)
	}
	if visible {
		t.Error("table created through one pool is visible in the other database")
	}
}

func TestParallelDatabases(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			pool := NewPool(t)
			if _, err := pool.Exec(t.Context(), "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTemplateRefusesConnections(t *testing.T) {
	// A connection to the template would make every clone fail.
	conn, err := pgx.Connect(t.Context(), current.urlFor(current.template))
	if err == nil {
		_ = conn.Close(t.Context())
		t.Fatal("connected to the template database")
	}
}
