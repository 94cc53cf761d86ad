// Package db owns the PostgreSQL side of Tasker: the connection pool, the
// embedded migrations, and one typed Go wrapper per SQL function so every
// call is timed and observed the same way.
package db
