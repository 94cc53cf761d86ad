package db

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err means the database could not be reached or
// went away — a refused or cut connection, a server shutting down, starting
// up or out of connection slots, a timeout — rather than something wrong with
// the statement. Such a call can succeed when tried again later.
func Unavailable(err error) bool { return UnavailableReason(err) != "" }

// UnavailableReason is a short fixed phrase saying why the database is
// unavailable ("" when err is not such an error). It never carries the
// error's own text, which names the host, port, user and database.
func UnavailableReason(err error) string {
	if err == nil {
		return ""
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "28P01" || pgErr.Code == "28000":
			return "authentication failed"
		case pgErr.Code == "57P01" || pgErr.Code == "57P02":
			return "server shutting down"
		case pgErr.Code == "57P03":
			return "server starting up"
		case pgErr.Code == "53300":
			return "too many connections"
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08":
			return "connection failure"
		}
		// Any other server error answers the statement: the server is up.
		return ""
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return "connection refused"
	case pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection lost"
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return "cannot connect"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return "network error"
	}
	return ""
}
