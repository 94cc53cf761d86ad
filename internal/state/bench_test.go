package state

import "testing"

// The state checks every transition makes on the hot path.
func BenchmarkCheckTask(b *testing.B) {
	for b.Loop() {
		if err := CheckTask(TaskStepsInProcess, TaskEvaluatingResults); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckStep(b *testing.B) {
	for b.Loop() {
		if err := CheckStep(StepEnqueuedForOrchestration, StepComplete); err != nil {
			b.Fatal(err)
		}
	}
}

// TaskPath runs once per result processed (the path to the next state).
func BenchmarkTaskPath(b *testing.B) {
	for b.Loop() {
		if p := TaskPath(TaskEvaluatingResults, TaskComplete); len(p) == 0 {
			b.Fatal("no path")
		}
	}
}
