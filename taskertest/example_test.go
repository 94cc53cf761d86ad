package taskertest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/taskertest"
)

// In a test, a handler runs with a synthetic step; the result is classified
// and encoded as a worker would.
func ExampleRunStep() {
	greet := handler.Func(func(_ context.Context, step *handler.StepContext) (any, error) {
		name, err := handler.Input[string](step, "name")
		if err != nil {
			return nil, handler.Permanent(err)
		}
		return "Hello, " + name, nil
	})
	t := &testing.T{} // in a real test, the test's own t
	res := taskertest.RunStep(t, greet, taskertest.StepOpts{Context: map[string]string{"name": "Ada"}})
	fmt.Println(string(res.Value))
	res = taskertest.RunStep(t, greet, taskertest.StepOpts{})
	fmt.Println(res.Permanent())
	// Output:
	// "Hello, Ada"
	// true
}
