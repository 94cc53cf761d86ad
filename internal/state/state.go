// Package state defines Tasker's task and step state machines: the twelve
// task states, the ten step states, and which transitions are allowed. It is
// pure; persistence (compare-and-swap on the row plus a history row) is in
// the SQL functions transition_task_state_atomic and transition_step_state_atomic.
package state

import "fmt"

// Task is a task state.
type Task string

// The twelve task states.
const (
	TaskPending                Task = "pending"
	TaskInitializing           Task = "initializing"
	TaskEnqueuingSteps         Task = "enqueuing_steps"
	TaskStepsInProcess         Task = "steps_in_process"
	TaskEvaluatingResults      Task = "evaluating_results"
	TaskWaitingForDependencies Task = "waiting_for_dependencies"
	TaskWaitingForRetry        Task = "waiting_for_retry"
	TaskBlockedByFailures      Task = "blocked_by_failures"
	TaskComplete               Task = "complete"
	TaskError                  Task = "error"
	TaskCancelled              Task = "cancelled"
	TaskResolvedManually       Task = "resolved_manually"
)

// TaskStates lists every task state.
var TaskStates = []Task{
	TaskPending, TaskInitializing, TaskEnqueuingSteps, TaskStepsInProcess, TaskEvaluatingResults,
	TaskWaitingForDependencies, TaskWaitingForRetry, TaskBlockedByFailures,
	TaskComplete, TaskError, TaskCancelled, TaskResolvedManually,
}

// Terminal reports whether the task is finished: no transition leaves s but
// an operator reopening a task in error (see Reopens).
func (s Task) Terminal() bool {
	switch s {
	case TaskComplete, TaskError, TaskCancelled, TaskResolvedManually:
		return true
	}
	return false
}

// Active reports whether orchestration is working on the task right now.
func (s Task) Active() bool {
	switch s {
	case TaskInitializing, TaskEnqueuingSteps, TaskStepsInProcess, TaskEvaluatingResults:
		return true
	}
	return false
}

// Waiting reports whether the task waits for time to pass, a retry or an operator.
func (s Task) Waiting() bool {
	switch s {
	case TaskWaitingForDependencies, TaskWaitingForRetry, TaskBlockedByFailures:
		return true
	}
	return false
}

// Valid reports whether s is one of the twelve states.
func (s Task) Valid() bool {
	for _, v := range TaskStates {
		if v == s {
			return true
		}
	}
	return false
}

var taskTransitions = map[Task][]Task{
	TaskPending:                {TaskInitializing},
	TaskInitializing:           {TaskEnqueuingSteps, TaskComplete, TaskWaitingForDependencies, TaskError},
	TaskEnqueuingSteps:         {TaskStepsInProcess, TaskError},
	TaskStepsInProcess:         {TaskEvaluatingResults, TaskError},
	TaskEvaluatingResults:      {TaskEnqueuingSteps, TaskComplete, TaskWaitingForDependencies, TaskWaitingForRetry, TaskBlockedByFailures, TaskError},
	TaskWaitingForDependencies: {TaskEvaluatingResults, TaskError},
	TaskWaitingForRetry:        {TaskEnqueuingSteps, TaskEvaluatingResults, TaskError},
	// → evaluating_results: an operator resolved a failed step, so the DAG
	// may go on.
	TaskBlockedByFailures: {TaskError, TaskResolvedManually, TaskEvaluatingResults},
}

// reopenTransitions are the only ways out of a terminal state, and only an
// operator takes them: a task in error is reopened when it is retried from
// its failed steps or one of them is resolved manually.
var reopenTransitions = map[Task][]Task{
	TaskError: {TaskWaitingForDependencies},
}

// CanTransitionTask reports whether a task may move from one state to another.
// Every non-terminal state may be cancelled; nothing leaves a terminal state
// but an operator's reopening of a task in error (Reopens).
func CanTransitionTask(from, to Task) bool {
	if !to.Valid() {
		return false
	}
	if from.Terminal() {
		return Reopens(from, to)
	}
	if to == TaskCancelled {
		return true
	}
	for _, t := range taskTransitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// Reopens reports whether from → to takes a finished task back into work:
// error → waiting_for_dependencies, by an operator's retry or resolve.
func Reopens(from, to Task) bool {
	for _, t := range reopenTransitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// CheckTask returns an error naming the transition when it is not allowed.
func CheckTask(from, to Task) error {
	if !CanTransitionTask(from, to) {
		return &TransitionError{Entity: "task", From: string(from), To: string(to)}
	}
	return nil
}

// Step is a workflow step state.
type Step string

// The ten step states.
const (
	StepPending                         Step = "pending"
	StepEnqueued                        Step = "enqueued"
	StepInProgress                      Step = "in_progress"
	StepEnqueuedForOrchestration        Step = "enqueued_for_orchestration"
	StepEnqueuedAsErrorForOrchestration Step = "enqueued_as_error_for_orchestration"
	StepWaitingForRetry                 Step = "waiting_for_retry"
	StepComplete                        Step = "complete"
	StepError                           Step = "error"
	StepCancelled                       Step = "cancelled"
	StepResolvedManually                Step = "resolved_manually"
)

// StepStates lists every step state.
var StepStates = []Step{
	StepPending, StepEnqueued, StepInProgress, StepEnqueuedForOrchestration, StepEnqueuedAsErrorForOrchestration,
	StepWaitingForRetry, StepComplete, StepError, StepCancelled, StepResolvedManually,
}

// Valid reports whether s is one of the ten states.
func (s Step) Valid() bool {
	for _, v := range StepStates {
		if v == s {
			return true
		}
	}
	return false
}

// Terminal reports whether the step is finished for good. error is not
// terminal: an operator may reset it for retry.
func (s Step) Terminal() bool {
	switch s {
	case StepComplete, StepCancelled, StepResolvedManually:
		return true
	}
	return false
}

// SatisfiesDependencies reports whether dependents of a step in s may run.
func (s Step) SatisfiesDependencies() bool { return s == StepComplete || s == StepResolvedManually }

// InFlight reports whether a worker or orchestration still owes the step an action.
func (s Step) InFlight() bool {
	switch s {
	case StepEnqueued, StepInProgress, StepEnqueuedForOrchestration, StepEnqueuedAsErrorForOrchestration:
		return true
	}
	return false
}

var stepTransitions = map[Step][]Step{
	StepPending:  {StepEnqueued, StepError},
	StepEnqueued: {StepInProgress, StepError},
	// in_progress → in_progress is a reclaim after the holder's lease expired.
	StepInProgress:                      {StepInProgress, StepEnqueuedForOrchestration, StepEnqueuedAsErrorForOrchestration, StepError},
	StepEnqueuedForOrchestration:        {StepComplete, StepError},
	StepEnqueuedAsErrorForOrchestration: {StepWaitingForRetry, StepError, StepComplete},
	StepWaitingForRetry:                 {StepPending},
	StepError:                           {StepPending},
}

// CanTransitionStep reports whether a step may move from one state to another.
// Any state but a terminal one may be cancelled; any state may be resolved manually.
func CanTransitionStep(from, to Step) bool {
	if !to.Valid() || !from.Valid() {
		return false
	}
	if to == StepResolvedManually {
		return from != StepResolvedManually
	}
	if from.Terminal() {
		return false
	}
	if to == StepCancelled {
		return true
	}
	for _, t := range stepTransitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// CheckStep returns an error naming the transition when it is not allowed.
func CheckStep(from, to Step) error {
	if !CanTransitionStep(from, to) {
		return &TransitionError{Entity: "step", From: string(from), To: string(to)}
	}
	return nil
}

// TransitionError is a transition the state machine forbids.
type TransitionError struct {
	Entity, From, To string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("%s transition %s → %s is not allowed", e.Entity, e.From, e.To)
}

// TaskPath returns the shortest chain of allowed transitions from one task
// state to another, excluding from and including to; nil when to cannot be
// reached. A task fails through blocked_by_failures, as upstream's GiveUp.
func TaskPath(from, to Task) []Task {
	if from == to {
		return []Task{}
	}
	if to == TaskError && from != TaskBlockedByFailures {
		if p := TaskPath(from, TaskBlockedByFailures); p != nil {
			return append(p, TaskError)
		}
	}
	prev := map[Task]Task{from: from}
	frontier := []Task{from}
	for len(frontier) > 0 {
		var next []Task
		for _, s := range frontier {
			for _, n := range taskTransitions[s] {
				if _, seen := prev[n]; seen {
					continue
				}
				prev[n] = s
				if n == to {
					var path []Task
					for c := to; c != from; c = prev[c] {
						path = append([]Task{c}, path...)
					}
					return path
				}
				next = append(next, n)
			}
		}
		frontier = next
	}
	return nil
}
