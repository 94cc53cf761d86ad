package worker

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSubmitAgain(t *testing.T) {
	t.Parallel()
	running := make(chan struct{})
	stopping := make(chan struct{})
	close(stopping)
	down := fmt.Errorf("storing: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")})
	refused := errors.New(`ERROR: invalid input syntax for type json (SQLSTATE 22P02)`)
	lease := 10 * time.Second

	require.True(t, submitAgain(down, 100, running, time.Hour, lease), "while running, an outage is waited out")
	require.True(t, submitAgain(down, 3, stopping, lease/2, lease), "stopping: until the lease has expired")
	require.False(t, submitAgain(down, 3, stopping, lease+time.Second, lease), "stopping, lease expired: give up")
	require.True(t, submitAgain(refused, 4, running, 0, lease))
	require.False(t, submitAgain(refused, 5, running, 0, lease), "other errors: five tries")
}
