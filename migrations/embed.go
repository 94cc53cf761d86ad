// Package migrations holds the SQL schema, applied in order by internal/db.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
