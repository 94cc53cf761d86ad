// Command ffi is Tasker's C ABI for step handlers written in other languages
// (the Ruby worker in workers/ruby loads it with the ffi gem). Build it with
//
//	go build -buildmode=c-shared -o libtasker.so ./ffi
//
// which also writes libtasker.h. Every function that can fail returns NULL on
// success or an error message the caller frees with tasker_free; none panics
// across the boundary. Bridges, steps and spans are named by uint64 handles.
//
// Functions that wait (tasker_bridge_open, tasker_worker_start,
// tasker_worker_stop, tasker_next_step, tasker_step_submit_child,
// tasker_flush, tasker_bridge_close) must be called without holding the
// caller's interpreter lock (ruby-ffi: blocking: true).
//
// A process must not fork after loading the library: the child would have
// the Go runtime's memory but none of its threads.
package main

/*
#include <stdint.h>
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/taskerhq/tasker/internal/foreign"
)

// bridges maps the handles given to the caller to bridges. It is package
// state because a C caller can hold only numbers, not Go pointers.
var bridges = struct {
	mu   sync.Mutex
	last uint64
	m    map[uint64]*foreign.Bridge
}{m: map[uint64]*foreign.Bridge{}}

func bridgeOf(h C.uint64_t) (*foreign.Bridge, error) {
	bridges.mu.Lock()
	defer bridges.mu.Unlock()
	b := bridges.m[uint64(h)]
	if b == nil {
		return nil, fmt.Errorf("bridge handle %d is not open", uint64(h))
	}
	return b, nil
}

// cerr converts err to a C string the caller frees (NULL for nil).
func cerr(err error) *C.char {
	if err == nil {
		return nil
	}
	return C.CString(err.Error())
}

// guard turns a panic into an error so that no Go panic unwinds into C.
func guard(what string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s: internal error: %v", what, p)
	}
}

func str(p *C.char, what string) (string, error) {
	if p == nil {
		return "", fmt.Errorf("%s: NULL pointer", what)
	}
	return C.GoString(p), nil
}

// optBytes reads a possibly NULL C string as bytes (NULL: empty).
func optBytes(p *C.char) []byte {
	if p == nil {
		return nil
	}
	return []byte(C.GoString(p))
}

func millis(n C.int64_t, what string) (time.Duration, error) {
	if n < 0 {
		return 0, fmt.Errorf("%s: must be ≥ 0 ms, got %d", what, int64(n))
	}
	return time.Duration(n) * time.Millisecond, nil
}

// tasker_bridge_open loads Tasker's configuration, starts the process's
// telemetry and stores the new bridge's handle in *out. options_json may be
// NULL or a JSON object: {"service_name": "...", "log_level": "info"}.
//
//export tasker_bridge_open
func tasker_bridge_open(optionsJSON *C.char, out *C.uint64_t) *C.char {
	return cerr(func() (err error) {
		defer guard("opening bridge", &err)
		if out == nil {
			return errors.New("opening bridge: out: NULL pointer")
		}
		o, err := foreign.ParseOptions(optBytes(optionsJSON))
		if err != nil {
			return err
		}
		b, err := foreign.Open(context.Background(), o)
		if err != nil {
			return err
		}
		bridges.mu.Lock()
		defer bridges.mu.Unlock()
		bridges.last++
		bridges.m[bridges.last] = b
		*out = C.uint64_t(bridges.last)
		return nil
	}())
}

// tasker_bridge_close stops the bridge's worker if it runs, flushes its
// telemetry and frees the handle.
//
//export tasker_bridge_close
func tasker_bridge_close(h C.uint64_t) *C.char {
	return cerr(func() (err error) {
		defer guard("closing bridge", &err)
		bridges.mu.Lock()
		b := bridges.m[uint64(h)]
		delete(bridges.m, uint64(h))
		bridges.mu.Unlock()
		if b == nil {
			return fmt.Errorf("closing bridge: handle %d is not open", uint64(h))
		}
		return b.Close()
	}())
}

// tasker_worker_start starts a worker for the namespaces of config_json (see
// foreign.WorkerConfig) whose steps go to tasker_next_step.
//
//export tasker_worker_start
func tasker_worker_start(h C.uint64_t, configJSON *C.char) *C.char {
	return cerr(func() (err error) {
		defer guard("starting worker", &err)
		b, err := bridgeOf(h)
		if err != nil {
			return err
		}
		s, err := str(configJSON, "worker config")
		if err != nil {
			return err
		}
		wc, err := foreign.ParseWorkerConfig([]byte(s))
		if err != nil {
			return err
		}
		return b.Start(context.Background(), wc)
	}())
}

// tasker_worker_stop stops claiming steps and waits up to timeout_ms for the
// steps in flight, which the caller must keep taking and completing
// meanwhile; tasker_next_step reports -1 once it has returned.
//
//export tasker_worker_stop
func tasker_worker_stop(h C.uint64_t, timeoutMS C.int64_t) *C.char {
	return cerr(func() (err error) {
		defer guard("stopping worker", &err)
		b, err := bridgeOf(h)
		if err != nil {
			return err
		}
		d, err := millis(timeoutMS, "stopping worker: timeout")
		if err != nil {
			return err
		}
		return b.Stop(d)
	}())
}

// tasker_next_step waits up to timeout_ms for a step. It returns 1 with the
// step's JSON in *out, 0 on timeout, -1 when the worker has stopped, and -2
// with an error message in *out. The caller frees *out with tasker_free.
//
//export tasker_next_step
func tasker_next_step(h C.uint64_t, timeoutMS C.int64_t, out **C.char) (rc C.int) {
	if out == nil {
		return -2
	}
	*out = nil
	var err error
	defer func() {
		// recover must be called by the deferred function itself.
		if p := recover(); p != nil {
			err = fmt.Errorf("taking the next step: internal error: %v", p)
		}
		if err != nil {
			*out, rc = C.CString(err.Error()), -2
		}
	}()
	b, err := bridgeOf(h)
	if err != nil {
		return -2
	}
	d, err := millis(timeoutMS, "taking the next step: timeout")
	if err != nil {
		return -2
	}
	data, ok, nerr := b.Next(d)
	switch {
	case errors.Is(nerr, foreign.ErrStopped):
		return -1
	case nerr != nil:
		err = nerr
		return -2
	case !ok:
		return 0
	}
	*out = C.CString(string(data))
	return 1
}

// tasker_step_complete answers a step: result_json is {"success": true,
// "value": ..., "metadata": {...}} or {"success": false, "error": {"type":
// "...", "message": "...", "retryable": true, "code": "..."}}.
//
//export tasker_step_complete
func tasker_step_complete(h, step C.uint64_t, resultJSON *C.char) *C.char {
	return cerr(func() (err error) {
		defer guard("completing step", &err)
		b, err := bridgeOf(h)
		if err != nil {
			return err
		}
		s, err := str(resultJSON, "step result")
		if err != nil {
			return err
		}
		r, err := foreign.ParseResult([]byte(s))
		if err != nil {
			return err
		}
		return b.Complete(uint64(step), r)
	}())
}

// tasker_step_submit_child creates a nested task from inside the step or
// span handle: request_json is {"namespace": "...", "name": "...",
// "version": "...", "context": {...}} (plus optional initiator, reason,
// tags, priority). The child's parent correlation ID is the step's
// correlation ID and it joins the step's trace. *out receives the child's
// task UUID, freed with tasker_free.
//
//export tasker_step_submit_child
func tasker_step_submit_child(h, handle C.uint64_t, requestJSON *C.char, out **C.char) *C.char {
	return cerr(func() (err error) {
		defer guard("submitting child task", &err)
		if out == nil {
			return errors.New("child task: out: NULL pointer")
		}
		*out = nil
		b, err := bridgeOf(h)
		if err != nil {
			return err
		}
		s, err := str(requestJSON, "child task")
		if err != nil {
			return err
		}
		id, err := b.SubmitChild(uint64(handle), []byte(s))
		if err != nil {
			return err
		}
		*out = C.CString(id.String())
		return nil
	}())
}

// tasker_log writes a record through Tasker's logger at level (debug, info,
// warn, error) for the step or span handle (0: none), with fields_json (a
// JSON object, or NULL).
//
//export tasker_log
func tasker_log(h, handle C.uint64_t, level, message, fieldsJSON *C.char) *C.char {
	return cerr(func() (err error) {
		defer guard("logging", &err)
		b, err := bridgeOf(h)
		if err != nil {
			return err
		}
		lv, err := str(level, "log: level")
		if err != nil {
			return err
		}
		msg, err := str(message, "log: message")
		if err != nil {
			return err
		}
		return b.Log(uint64(handle), lv, msg, optBytes(fieldsJSON))
	}())
}

// tasker_span_start starts a span under the step or span handle parent (0:
// a new trace) with attrs_json (a JSON object, or NULL) and stores its
// handle in *out.
//
//export tasker_span_start
func tasker_span_start(h, parent C.uint64_t, name, attrsJSON *C.char, out *C.uint64_t) *C.char {
	return cerr(func() (err error) {
		defer guard("starting span", &err)
		if out == nil {
			return errors.New("starting span: out: NULL pointer")
		}
		b, err := bridgeOf(h)
		if err != nil {
			return err
		}
		n, err := str(name, "starting span: name")
		if err != nil {
			return err
		}
		sh, err := b.StartSpan(uint64(parent), n, optBytes(attrsJSON))
		if err != nil {
			return err
		}
		*out = C.uint64_t(sh)
		return nil
	}())
}

// tasker_span_end ends a span with status_json ({"status": "ok"|"error",
// "message": "...", "error_type": "...", "attributes": {...}}, or NULL).
//
//export tasker_span_end
func tasker_span_end(h, span C.uint64_t, statusJSON *C.char) *C.char {
	return cerr(func() (err error) {
		defer guard("ending span", &err)
		b, err := bridgeOf(h)
		if err != nil {
			return err
		}
		return b.EndSpan(uint64(span), optBytes(statusJSON))
	}())
}

// tasker_flush exports buffered telemetry now, waiting up to timeout_ms.
//
//export tasker_flush
func tasker_flush(h C.uint64_t, timeoutMS C.int64_t) *C.char {
	return cerr(func() (err error) {
		defer guard("flushing telemetry", &err)
		b, err := bridgeOf(h)
		if err != nil {
			return err
		}
		d, err := millis(timeoutMS, "flushing telemetry: timeout")
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return b.Flush(ctx)
	}())
}

// tasker_free frees a string returned by this library.
//
//export tasker_free
func tasker_free(s *C.char) { C.free(unsafe.Pointer(s)) }

func main() {}
