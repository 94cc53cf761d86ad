package examples

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/template"
)

// maxResultBits stops a squaring step from exhausting memory: each squaring
// doubles the size, so a long enough chain in a hand-written template would
// otherwise grow without bound. The shipped examples stay below 450 bits.
const maxResultBits = 1 << 20

// square squares context.even_number (a root step) or the product of the
// dependency results named in inputs.operands. Results are decimal strings
// because they outgrow int64 and JSON numbers lose precision beyond 2^53.
//
// The operands are configured rather than taken from DependencyResults
// because that map holds every completed ancestor, not just the parents.
func square(_ context.Context, step *handler.StepContext) (any, error) {
	var cfg struct {
		Operands []string `json:"operands"`
	}
	if len(step.Inputs) > 0 {
		if err := json.Unmarshal(step.Inputs, &cfg); err != nil {
			return nil, handler.Permanent(fmt.Errorf("step %q: decoding inputs: %w", step.StepName, err))
		}
	}

	var product *big.Int
	if len(cfg.Operands) == 0 {
		if len(step.DependencyResults) > 0 {
			// Squaring the task input here would silently give a wrong
			// answer for a template that forgot to list its operands.
			return nil, handler.Permanent(fmt.Errorf("step %q has dependencies but no inputs.operands naming which to multiply", step.StepName))
		}
		n, err := evenNumber(step)
		if err != nil {
			return nil, handler.Permanent(fmt.Errorf("step %q: %w", step.StepName, err))
		}
		product = big.NewInt(n)
	} else {
		product = big.NewInt(1)
		for _, op := range cfg.Operands {
			v, err := decimalResult(step, op)
			if err != nil {
				return nil, handler.Permanent(fmt.Errorf("step %q: %w", step.StepName, err))
			}
			product.Mul(product, v)
			if product.BitLen() > maxResultBits/2 {
				return nil, handler.Permanent(fmt.Errorf("step %q: result would exceed %d bits", step.StepName, maxResultBits))
			}
		}
	}
	return product.Mul(product, product).String(), nil
}

// evenNumber reads and checks context.even_number.
func evenNumber(step *handler.StepContext) (int64, error) {
	// Decoding into int64 rejects strings, fractions and exponents, so a
	// sloppy client gets a clear error instead of a truncated number.
	// A pointer tells null apart from 0 for the error message.
	var n *int64
	if err := step.Input("even_number", &n); err != nil {
		return 0, fmt.Errorf("even_number: %w", err)
	}
	if n == nil {
		return 0, errors.New("even_number is null")
	}
	if err := checkEvenNumber(*n); err != nil {
		return 0, err
	}
	return *n, nil
}

func checkEvenNumber(n int64) error {
	if n < 2 || n > 100 || n%2 != 0 {
		return fmt.Errorf("even_number must be an even integer from 2 to 100, got %d", n)
	}
	return nil
}

// decimalResult reads the result of dependency name as a non-negative
// decimal string.
func decimalResult(step *handler.StepContext, name string) (*big.Int, error) {
	var s string
	if err := step.DependencyResult(name, &s); err != nil {
		return nil, err
	}
	// big.Int.SetString also takes signs and underscores; the squaring steps
	// never produce those, so seeing one means a foreign result.
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("result of dependency %q is not a decimal string: %q", name, s)
		}
	}
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("result of dependency %q is not a decimal string: %q", name, s)
	}
	return v, nil
}

// failNTimes fails with a retryable error on the first inputs.fail_count
// attempts and then succeeds, to exercise retry scheduling and exhaustion.
func failNTimes(_ context.Context, step *handler.StepContext) (any, error) {
	var failCount int
	if err := step.Init("fail_count", &failCount); err != nil {
		return nil, handler.Permanent(fmt.Errorf("step %q: %w", step.StepName, err))
	}
	if failCount < 0 {
		return nil, handler.Permanent(fmt.Errorf("step %q: fail_count must not be negative, got %d", step.StepName, failCount))
	}
	if step.Attempt < 1 {
		return nil, handler.Permanent(fmt.Errorf("step %q: invalid attempt number %d", step.StepName, step.Attempt))
	}
	if step.Attempt <= failCount {
		return nil, fmt.Errorf("step %q: planned failure on attempt %d (this step fails its first %d attempts)", step.StepName, step.Attempt, failCount)
	}
	return map[string]any{"attempts_before_success": step.Attempt}, nil
}

// spawnChild submits a task of the template named by inputs.child
// ("namespace/name@version") with the parent's even_number and returns the
// child's UUID. A retry after a submission whose answer was lost starts a
// second child: TaskRequest carries no idempotency key to prevent that.
func spawnChild(ctx context.Context, step *handler.StepContext) (any, error) {
	var ref string
	if err := step.Init("child", &ref); err != nil {
		return nil, handler.Permanent(fmt.Errorf("step %q: %w", step.StepName, err))
	}
	ns, name, version, err := template.ParseRef(ref)
	if err != nil {
		return nil, handler.Permanent(fmt.Errorf("step %q: inputs.child: %w", step.StepName, err))
	}
	n, err := evenNumber(step)
	if err != nil {
		return nil, handler.Permanent(fmt.Errorf("step %q: %w", step.StepName, err))
	}
	req, err := step.ChildTask(ns, name, version, map[string]int64{"even_number": n})
	if err != nil {
		// Only correlation ID generation can fail here, which is transient.
		return nil, fmt.Errorf("step %q: building child task request: %w", step.StepName, err)
	}
	id, err := step.SubmitChildTask(ctx, req)
	if errors.Is(err, handler.ErrNoSubmitter) {
		return nil, handler.Permanent(fmt.Errorf("step %q: nested workflows cannot run on this worker: %w", step.StepName, err))
	}
	if err != nil {
		return nil, fmt.Errorf("step %q: submitting child task %s: %w", step.StepName, ref, err)
	}
	return map[string]any{"child_task_uuid": id.String()}, nil
}
