package foreign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// ParseLevel maps a level name of the foreign runtime onto slog's.
func ParseLevel(name string) (slog.Level, error) {
	switch strings.ToLower(name) {
	case "debug", "trace":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("level: %q is not one of debug, info, warn, error", name)
}

// reserved are the fields the bridge sets from the step itself; the same
// keys in the runtime's fields are dropped so a record cannot carry two
// different correlation IDs.
var reserved = map[string]bool{"correlation_id": true, "task_uuid": true, "step_uuid": true,
	"namespace": true, "step_name": true, "component": true, "trace_id": true, "span_id": true}

// Log writes one record through the process logger. handle is the step or
// span the record belongs to (0: none): the record then carries the step's
// correlation_id, task_uuid, step_uuid, namespace and step_name, and the
// trace context of that span (trace_id/span_id in text and JSON output,
// natively in OTLP). fieldsJSON is a JSON object of further fields (may be
// empty).
func (b *Bridge) Log(handle uint64, level, message string, fieldsJSON []byte) error {
	lv, err := ParseLevel(level)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	fields, err := parseFields(fieldsJSON, "log fields")
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	ctx, st, err := b.refs.lookup(handle)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	if !b.rlog.Enabled(ctx, lv) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(fields)+6)
	if st != nil {
		sc := st.sc
		attrs = append(attrs, slog.String("correlation_id", sc.CorrelationID.String()),
			slog.String("task_uuid", sc.TaskUUID.String()), slog.String("step_uuid", sc.StepUUID.String()),
			slog.String("namespace", sc.Namespace), slog.String("step_name", sc.StepName))
	}
	for _, k := range sortedKeys(fields) {
		if !reserved[k] {
			attrs = append(attrs, slog.Any(k, logValue(fields[k])))
		}
	}
	b.rlog.LogAttrs(ctx, lv, message, attrs...)
	return nil
}

// logValue makes JSON numbers print as numbers and nested values as JSON.
func logValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case []any:
		if ss, ok := allStrings(x); ok {
			return ss
		}
		b, _ := json.Marshal(x)
		return string(b)
	case map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return v
}

// StartSpan starts a span named name under the step or span handle parent
// (0: a new trace) and returns its handle. attrsJSON is a JSON object of
// attributes (may be empty); the step's IDs are added to spans under a step.
func (b *Bridge) StartSpan(parent uint64, name string, attrsJSON []byte) (uint64, error) {
	if name == "" {
		return 0, fmt.Errorf("starting span: name: required")
	}
	fields, err := parseFields(attrsJSON, "span attributes")
	if err != nil {
		return 0, fmt.Errorf("starting span %q: %w", name, err)
	}
	return b.refs.startSpan(parent, name, attributes(fields))
}

// EndSpan ends the span handle with statusJSON (see SpanStatus; may be
// empty).
func (b *Bridge) EndSpan(handle uint64, statusJSON []byte) error {
	st, err := parseSpanStatus(statusJSON)
	if err != nil {
		return fmt.Errorf("ending span: %w", err)
	}
	span, err := b.refs.endSpan(handle)
	if err != nil {
		return fmt.Errorf("ending span: %w", err)
	}
	span.SetAttributes(attributes(st.Attributes)...)
	switch st.Status {
	case "ok":
		span.SetStatus(codes.Ok, "")
	case "error":
		span.SetStatus(codes.Error, st.Message)
		if st.ErrorType != "" {
			span.SetAttributes(semconv.ErrorTypeKey.String(st.ErrorType))
			span.AddEvent("exception", trace.WithAttributes(semconv.ExceptionTypeKey.String(st.ErrorType),
				semconv.ExceptionMessageKey.String(st.Message)))
		}
	}
	span.End()
	return nil
}

// attributes converts decoded JSON values to span attributes: scalars and
// homogeneous arrays keep their type; anything else is recorded as JSON.
func attributes(fields map[string]any) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, len(fields))
	for _, k := range sortedKeys(fields) {
		kv = append(kv, attributeOf(k, fields[k]))
	}
	return kv
}

func attributeOf(k string, v any) attribute.KeyValue {
	switch x := v.(type) {
	case string:
		return attribute.String(k, x)
	case bool:
		return attribute.Bool(k, x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return attribute.Int64(k, i)
		}
		if f, err := x.Float64(); err == nil {
			return attribute.Float64(k, f)
		}
		return attribute.String(k, x.String())
	case []any:
		if ss, ok := allStrings(x); ok {
			return attribute.StringSlice(k, ss)
		}
	}
	b, _ := json.Marshal(v)
	return attribute.String(k, string(b))
}

func allStrings(xs []any) ([]string, bool) {
	out := make([]string, len(xs))
	for i, x := range xs {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ChildTask is what the foreign runtime asks for when its handler starts a
// nested task (JSON).
type ChildTask struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Version empty means the newest registered one.
	Version string `json:"version"`
	// Context is the child's input, a JSON object (default {}).
	Context   json.RawMessage `json:"context"`
	Initiator string          `json:"initiator"`
	Reason    string          `json:"reason"`
	Tags      []string        `json:"tags"`
	Priority  int             `json:"priority"`
}

// SubmitChild creates a task whose parent correlation ID is the step's
// correlation ID, from inside the step or span handle (its span is the
// parent of the creation, so the child joins the task's trace). It returns
// the child's task UUID.
func (b *Bridge) SubmitChild(handle uint64, requestJSON []byte) (uuid.UUID, error) {
	var c ChildTask
	if err := decodeStrict(requestJSON, &c); err != nil {
		return uuid.Nil, fmt.Errorf("child task: %w", err)
	}
	switch {
	case c.Namespace == "":
		return uuid.Nil, errors.New("child task: namespace: required")
	case c.Name == "":
		return uuid.Nil, errors.New("child task: name: required")
	}
	if len(bytes.TrimSpace(c.Context)) == 0 {
		c.Context = json.RawMessage(`{}`)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(c.Context), []byte("{")) {
		return uuid.Nil, errors.New("child task: context: must be a JSON object")
	}
	ctx, st, err := b.refs.lookup(handle)
	if err != nil {
		return uuid.Nil, fmt.Errorf("child task: %w", err)
	}
	if st == nil {
		return uuid.Nil, errors.New("child task: only a step can start a child task (handle 0 names none)")
	}
	req, err := st.sc.ChildTask(c.Namespace, c.Name, c.Version, nil)
	if err != nil {
		return uuid.Nil, fmt.Errorf("child task: %w", err)
	}
	req.Context, req.Initiator, req.Reason, req.Tags, req.Priority = c.Context, c.Initiator, c.Reason, c.Tags, c.Priority
	id, err := st.sc.SubmitChildTask(ctx, req)
	if err != nil {
		return uuid.Nil, fmt.Errorf("submitting child task %s/%s: %w", c.Namespace, c.Name, err)
	}
	return id, nil
}
