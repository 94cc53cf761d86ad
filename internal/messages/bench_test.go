package messages

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The messages every step sends and receives: a step message (orchestration
// → worker), a result message (worker → orchestration) and the stored result.
func BenchmarkStepMessageRoundTrip(b *testing.B) {
	m := StepMessage{TaskUUID: uuid.New(), StepUUID: uuid.New(), CorrelationID: uuid.New(), Namespace: "linear_workflow",
		StepName: "linear_step_2", Attempt: 1}
	for b.Loop() {
		buf, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		var out StepMessage
		if err := json.Unmarshal(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepResultMessageRoundTrip(b *testing.B) {
	m := StepResultMessage{TaskUUID: uuid.New(), StepUUID: uuid.New(), CorrelationID: uuid.New(), StepName: "linear_step_2",
		Attempt: 1, Success: true, WorkerID: "worker_0192"}
	for b.Loop() {
		buf, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		var out StepResultMessage
		if err := json.Unmarshal(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepExecutionResultRoundTrip(b *testing.B) {
	now := time.Now()
	r := StepExecutionResult{StepUUID: uuid.New(), Success: true, Status: "completed", Result: "2821109907456",
		Metadata: ResultMetadata{ExecutionTimeMs: 0.05, Attempt: 1, WorkerID: "worker_0192", StartedAt: now, CompletedAt: now,
			CorrelationID: uuid.New()}}
	for b.Loop() {
		buf, err := json.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		var out StepExecutionResult
		if err := json.Unmarshal(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}
