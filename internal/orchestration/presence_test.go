package orchestration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPresenceWarnsAfterTwoUnservedReads(t *testing.T) {
	t.Parallel()
	var p presence
	now := time.Now()
	require.False(t, p.warnUnserved("etl", now), "nothing read yet")

	p.update(map[string]int64{"etl": 0, "billing": 1})
	require.False(t, p.warnUnserved("etl", now), "one read: a worker starting now may not have recorded itself")
	p.update(map[string]int64{"etl": 0, "billing": 1})
	require.True(t, p.warnUnserved("etl", now))
	require.False(t, p.warnUnserved("etl", now.Add(30*time.Second)), "once per minute")
	require.True(t, p.warnUnserved("etl", now.Add(stalledWarnEvery)))
	require.False(t, p.warnUnserved("billing", now), "served")

	p.update(map[string]int64{"etl": 1, "billing": 1})
	p.update(map[string]int64{"etl": 0, "billing": 1})
	require.False(t, p.warnUnserved("etl", now.Add(time.Hour)), "a worker came and went: count again")

	p.update(map[string]int64{"billing": 0})
	p.update(map[string]int64{"billing": 0, "etl": 0})
	require.False(t, p.warnUnserved("etl", now.Add(time.Hour)), "a namespace that left and came back counts again")
	require.True(t, p.warnUnserved("billing", now.Add(time.Hour)))
}
