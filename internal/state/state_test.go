package state

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTaskTransitions(t *testing.T) {
	t.Parallel()
	allowed := map[[2]Task]bool{
		{TaskPending, TaskInitializing}:                     true,
		{TaskInitializing, TaskEnqueuingSteps}:              true,
		{TaskInitializing, TaskComplete}:                    true,
		{TaskInitializing, TaskWaitingForDependencies}:      true,
		{TaskInitializing, TaskError}:                       true,
		{TaskEnqueuingSteps, TaskStepsInProcess}:            true,
		{TaskEnqueuingSteps, TaskError}:                     true,
		{TaskStepsInProcess, TaskEvaluatingResults}:         true,
		{TaskStepsInProcess, TaskError}:                     true,
		{TaskEvaluatingResults, TaskEnqueuingSteps}:         true,
		{TaskEvaluatingResults, TaskComplete}:               true,
		{TaskEvaluatingResults, TaskWaitingForDependencies}: true,
		{TaskEvaluatingResults, TaskWaitingForRetry}:        true,
		{TaskEvaluatingResults, TaskBlockedByFailures}:      true,
		{TaskEvaluatingResults, TaskError}:                  true,
		{TaskWaitingForDependencies, TaskEvaluatingResults}: true,
		{TaskWaitingForDependencies, TaskError}:             true,
		{TaskWaitingForRetry, TaskEnqueuingSteps}:           true,
		{TaskWaitingForRetry, TaskEvaluatingResults}:        true,
		{TaskWaitingForRetry, TaskError}:                    true,
		{TaskBlockedByFailures, TaskError}:                  true,
		{TaskBlockedByFailures, TaskResolvedManually}:       true,
		{TaskBlockedByFailures, TaskEvaluatingResults}:      true,
		// An operator's retry or resolve reopens a failed task.
		{TaskError, TaskWaitingForDependencies}: true,
	}
	for _, from := range TaskStates {
		for _, to := range TaskStates {
			want := allowed[[2]Task{from, to}] || (to == TaskCancelled && !from.Terminal())
			require.Equal(t, want, CanTransitionTask(from, to), "%s → %s", from, to)
			if want {
				require.NoError(t, CheckTask(from, to))
			} else {
				require.ErrorContains(t, CheckTask(from, to), string(from)+" → "+string(to))
			}
		}
	}
	require.Len(t, TaskStates, 12)
	require.False(t, CanTransitionTask(TaskPending, "bogus"))
}

func TestReopens(t *testing.T) {
	t.Parallel()
	for _, from := range TaskStates {
		for _, to := range TaskStates {
			want := from == TaskError && to == TaskWaitingForDependencies
			require.Equal(t, want, Reopens(from, to), "%s → %s", from, to)
		}
	}
	// Nothing else leaves a finished task, cancelled and complete included.
	for _, from := range []Task{TaskComplete, TaskCancelled, TaskResolvedManually} {
		for _, to := range TaskStates {
			require.False(t, CanTransitionTask(from, to), "%s → %s", from, to)
		}
	}
}

func TestTaskStateClasses(t *testing.T) {
	t.Parallel()
	for _, s := range TaskStates {
		classes := 0
		for _, b := range []bool{s.Terminal(), s.Active(), s.Waiting(), s == TaskPending} {
			if b {
				classes++
			}
		}
		require.Equal(t, 1, classes, "state %s must be in exactly one class", s)
	}
}

func TestStepTransitions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from, to Step
		ok       bool
	}{
		{StepPending, StepEnqueued, true},
		{StepEnqueued, StepInProgress, true},
		{StepInProgress, StepInProgress, true},
		{StepInProgress, StepEnqueuedForOrchestration, true},
		{StepInProgress, StepEnqueuedAsErrorForOrchestration, true},
		{StepEnqueuedForOrchestration, StepComplete, true},
		{StepEnqueuedAsErrorForOrchestration, StepWaitingForRetry, true},
		{StepEnqueuedAsErrorForOrchestration, StepError, true},
		{StepWaitingForRetry, StepPending, true},
		{StepError, StepPending, true},
		{StepError, StepResolvedManually, true},
		{StepPending, StepCancelled, true},
		{StepPending, StepInProgress, false},
		{StepPending, StepComplete, false},
		{StepEnqueued, StepComplete, false},
		{StepInProgress, StepComplete, false},
		{StepComplete, StepPending, false},
		{StepComplete, StepCancelled, false},
		{StepCancelled, StepPending, false},
		{StepResolvedManually, StepResolvedManually, false},
		{StepWaitingForRetry, StepEnqueued, false},
		{"bogus", StepPending, false},
	}
	for _, c := range cases {
		require.Equal(t, c.ok, CanTransitionStep(c.from, c.to), "%s → %s", c.from, c.to)
	}
	require.Len(t, StepStates, 10)
	require.True(t, StepComplete.SatisfiesDependencies())
	require.True(t, StepResolvedManually.SatisfiesDependencies())
	require.False(t, StepError.SatisfiesDependencies())
	require.False(t, StepError.Terminal())
}

func TestTaskPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from, to Task
		want     []Task
	}{
		{TaskPending, TaskEnqueuingSteps, []Task{TaskInitializing, TaskEnqueuingSteps}},
		{TaskStepsInProcess, TaskEnqueuingSteps, []Task{TaskEvaluatingResults, TaskEnqueuingSteps}},
		{TaskStepsInProcess, TaskComplete, []Task{TaskEvaluatingResults, TaskComplete}},
		{TaskStepsInProcess, TaskError, []Task{TaskEvaluatingResults, TaskBlockedByFailures, TaskError}},
		{TaskWaitingForRetry, TaskEnqueuingSteps, []Task{TaskEnqueuingSteps}},
		{TaskWaitingForDependencies, TaskComplete, []Task{TaskEvaluatingResults, TaskComplete}},
		{TaskInitializing, TaskComplete, []Task{TaskComplete}},
		{TaskBlockedByFailures, TaskError, []Task{TaskError}},
		{TaskEvaluatingResults, TaskEvaluatingResults, []Task{}},
		{TaskComplete, TaskPending, nil},
	}
	for _, c := range cases {
		require.Equal(t, c.want, TaskPath(c.from, c.to), "%s → %s", c.from, c.to)
	}
}
