package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/taskerhq/tasker/handler"
)

type order struct {
	ID    int `json:"order_id"`
	Cents int `json:"amount_cents"`
}

// A handler returns its result or an error; wrapping the error with
// Permanent fails the step without a retry.
func ExampleTyped() {
	charge := handler.Typed(func(_ context.Context, _ *handler.StepContext, o order) (map[string]int, error) {
		if o.Cents <= 0 {
			return nil, handler.Permanent(fmt.Errorf("order %d: amount must be positive", o.ID))
		}
		return map[string]int{"charged": o.Cents}, nil
	})
	reg := handler.NewRegistry()
	reg.MustRegister("billing.charge", charge)

	h, _ := reg.Lookup("billing.charge")
	v, err := h.Handle(context.Background(), &handler.StepContext{Context: []byte(`{"order_id": 7, "amount_cents": 1250}`)})
	fmt.Println(v, err)
	_, err = h.Handle(context.Background(), &handler.StepContext{Context: []byte(`{"order_id": 8, "amount_cents": 0}`)})
	fmt.Println(handler.IsPermanent(err), err)
	// Output:
	// map[charged:1250] <nil>
	// true order 8: amount must be positive
}

// How the worker records errors: a plain error is retried, Permanent is not,
// and NewError carries a type and code of the handler's own.
func ExampleClassify() {
	for _, err := range []error{
		errors.New("connection reset"),
		handler.Permanent(errors.New("card declined")),
		handler.NewError("payment_error", "insufficient_funds", false, errors.New("declined by the bank")),
	} {
		e := handler.Classify(err)
		fmt.Printf("%s %q retryable=%v\n", e.Type, e.Code, e.Retryable)
	}
	// Output:
	// retryable_error "" retryable=true
	// permanent_error "" retryable=false
	// payment_error "insufficient_funds" retryable=false
}

// Typed accessors decode the task context, the step's inputs and the results
// of the steps it depends on.
func ExampleDependencyResult() {
	summarise := handler.Func(func(_ context.Context, step *handler.StepContext) (any, error) {
		rows, err := handler.DependencyResult[[]int](step, "fetch")
		if err != nil {
			return nil, handler.Permanent(err)
		}
		limit, err := handler.Init[int](step, "limit")
		if err != nil {
			return nil, handler.Permanent(err)
		}
		sum := 0
		for _, r := range rows[:min(limit, len(rows))] {
			sum += r
		}
		return sum, nil
	})
	v, err := summarise.Handle(context.Background(), &handler.StepContext{
		Inputs:            json.RawMessage(`{"limit": 2}`),
		DependencyResults: map[string]json.RawMessage{"fetch": json.RawMessage(`[3, 4, 5]`)},
	})
	fmt.Println(v, err)
	// Output: 7 <nil>
}
