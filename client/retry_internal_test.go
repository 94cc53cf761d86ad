package client

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999", 0}, // beyond any sane wait and uint32: malformed
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Thu, 26 Nov 2026 03:00:30 GMT", 30 * time.Second},
		{"Thursday, 26-Nov-26 03:00:30 GMT", 30 * time.Second}, // RFC 850, still accepted
	} {
		require.Equal(t, tc.want, parseRetryAfter(tc.header, now), "Retry-After: %q", tc.header)
	}
}
