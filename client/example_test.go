package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/taskerhq/tasker/client"
)

// Errors from the API carry the field at fault and a stable code.
func ExampleClient_CreateTask() {
	// A stand-in for a Tasker server that knows no template.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"unknown_template","field":"name","message":"no template billing/refund is registered"}}`))
	}))
	defer srv.Close()

	c := client.New(srv.URL)
	req, err := client.NewTaskRequest("billing", "refund", "", map[string]any{"order_id": 7})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = c.CreateTask(context.Background(), req)
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code, apiErr.Field)
	}
	// Output: 404 unknown_template name
}
