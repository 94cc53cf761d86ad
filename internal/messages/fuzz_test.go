package messages_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// FuzzDecodeQueueMessage decodes arbitrary queue bodies and headers as
// orchestration and the workers do. Nothing may panic; every body that
// decodes must survive a round trip through its JSON form unchanged (what
// one process writes, another reads back the same); a task request from
// the queue is checked by the same rules as one from the API.
// Seeds: testdata/fuzz/FuzzDecodeQueueMessage.
func FuzzDecodeQueueMessage(f *testing.F) {
	f.Add([]byte(`{"request_id":"0190b6c4-7a8e-7cc0-8d7e-5a4b3c2d1e0f","correlation_id":"0190b6c4-7a8e-7cc0-8d7e-5a4b3c2d1e0f","task_request":{"namespace":"a","name":"b","context":{}},"requested_at":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`))
	f.Add([]byte(`{"task_uuid":"0190b6c4-7a8e-7cc0-8d7e-5a4b3c2d1e0f","step_uuid":"0190b6c4-7a8e-7cc0-8d7e-5a4b3c2d1e0e","step_name":"s","attempt":2,"success":true,"worker_id":"w"}`),
		[]byte(`{"a":1,"b":"x","c":null}`))
	f.Add([]byte(`{"step_uuid":"0190b6c4-7a8e-7cc0-8d7e-5a4b3c2d1e0e","success":false,"status":"failed","result":null,"error":{"message":"m","error_type":"T","retryable":true},"metadata":{"attempt":1}}`),
		[]byte(``))
	f.Add([]byte(`{"task_request":{"namespace":"a","name":"b","reason":"\u0000"}}`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, body, headers []byte) {
		var h map[string]string
		if err := queue.DecodeHeaders(headers, &h); err == nil && len(h) > 0 {
			raw, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]string
			if err := queue.DecodeHeaders(raw, &back); err != nil || !reflect.DeepEqual(h, back) {
				t.Fatalf("headers changed through their stored form: %v → %v (%v)", h, back, err)
			}
		}
		var req messages.TaskRequestMessage
		if roundTrip(t, body, &req) {
			_ = taskreq.Validate(&req.TaskRequest)
		}
		roundTrip(t, body, &messages.StepMessage{})
		roundTrip(t, body, &messages.StepResultMessage{})
		roundTrip(t, body, &messages.StepExecutionResult{})
	})
}

// roundTrip decodes body into v and, when that works, checks that encoding
// and decoding v again gives the same value. It reports whether body decoded.
func roundTrip[T any](t *testing.T, body []byte, v *T) bool {
	t.Helper()
	if json.Unmarshal(body, v) != nil {
		return false
	}
	raw, err := json.Marshal(v)
	if err != nil {
		// Only values JSON cannot carry (none of these types holds one) fail here.
		t.Fatalf("encoding decoded %T: %v", v, err)
	}
	var back T
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("decoding re-encoded %T: %v\n%s", v, err, raw)
	}
	again, err := json.Marshal(&back)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(raw) {
		t.Fatalf("%T changed through its JSON form:\n%s\n%s", v, raw, again)
	}
	return true
}
