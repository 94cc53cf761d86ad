package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/api/apitest"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// FuzzCreateTaskRequest sends arbitrary bodies and X-Correlation-ID headers
// to POST /v1/tasks. No input may crash the decoder or get a 5xx (the backend
// here never fails), and only a request every taskreq rule accepts may reach
// the backend: bad input writes nothing. Seeds: testdata/fuzz/FuzzCreateTaskRequest.
func FuzzCreateTaskRequest(f *testing.F) {
	f.Add([]byte(`{"namespace":"billing","name":"invoice","context":{"a":1}}`), "")
	f.Add([]byte(`{"namespace":"billing","name":"invoice","version":"1.0.0","tags":["x"],"priority":3,"reason":"r"}`), "0190b6c4-7a8e-7cc0-8d7e-5a4b3c2d1e0f")
	f.Add([]byte(`{"namespace":"billing","name":"invoice","context":{"k\u0000":"v"}}`), "")
	f.Add([]byte(`{"namespace":"billing","name":"invoice","idempotency_key":"k1","correlation_id":"0190b6c4-7a8e-7cc0-8d7e-5a4b3c2d1e0f"}`), "0190b6c4-7a8e-7cc0-8d7e-5a4b3c2d1e0e")
	f.Add([]byte(`[1,2,3]`), "zzz")
	f.Add([]byte(`{"namespace":"billing","name":"invoice","context":{"a":{"b":{"c":[[[[[[]]]]]]}}}}`), "")
	f.Fuzz(func(t *testing.T, body []byte, correlationHeader string) {
		backend := apitest.NewBackend(apitest.Template("billing", "invoice", "1.0.0", "fetch", "charge"))
		h, err := api.NewHandler(api.Config{Backend: backend, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/tasks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if correlationHeader != "" {
			req.Header["X-Correlation-Id"] = []string{correlationHeader}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		created := backend.CreateRequests()
		if len(created) > 1 {
			t.Fatalf("%d create calls for one request", len(created))
		}
		if len(created) == 0 {
			if rec.Code < 400 {
				t.Fatalf("status %d without a create call", rec.Code)
			}
			return
		}
		if err := taskreq.Validate(&created[0]); err != nil {
			t.Fatalf("a request taskreq rejects reached the backend: %v (%+v)", err, created[0])
		}
		// Past the decoder only the backend's own answers are errors: an
		// unknown template (404) or a reused idempotency key (409).
		if rec.Code >= 400 && rec.Code != http.StatusNotFound && rec.Code != http.StatusConflict {
			t.Fatalf("status %d after the backend accepted the request: %s", rec.Code, rec.Body)
		}
	})
}
