package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/config"
)

// Attribute keys the logger reads or adds.
const (
	// ComponentKey selects a per-component level (config telemetry.logs.components).
	ComponentKey = "component"
	TraceIDKey   = "trace_id"
	SpanIDKey    = "span_id"
)

// LevelTrace is below slog.LevelDebug: entry and exit of hot-path calls
// (every SQL function, every claim), for following one request through the
// code. Off unless telemetry.logs.level (or a component's level) is "trace".
const LevelTrace = slog.Level(-8)

// ParseLevel maps a configured level name onto slog's. Unknown names (which
// config validation rejects) fall back to info rather than silencing logs.
func ParseLevel(name string) slog.Level {
	switch name {
	case config.LevelTrace:
		return LevelTrace
	case config.LevelDebug:
		return slog.LevelDebug
	case config.LevelWarn:
		return slog.LevelWarn
	case config.LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogger returns the process logger: text or JSON to w at the configured
// level, with per-component levels picked by a "component" attribute
// (logger.With("component", "worker"), or on the record itself). Records
// logged with a context inside a span (InfoContext etc.) carry trace_id and
// span_id. When p exports logs, every record that passes the level check is
// also sent as an OTLP log record (which carries the trace context natively).
// p may be nil, for the bootstrap logger that reports New's own failures.
func NewLogger(cfg config.Logs, w io.Writer, p *Providers) *slog.Logger {
	lv := &levels{def: ParseLevel(cfg.Level), byComponent: map[string]slog.Level{}}
	lv.min = lv.def
	for name, level := range cfg.Components {
		l := ParseLevel(level)
		lv.byComponent[name] = l
		lv.min = min(lv.min, l)
	}
	// The inner handler must not filter: levels are decided here, per component.
	opts := &slog.HandlerOptions{Level: lv.min, ReplaceAttr: levelNames}
	var out slog.Handler
	if cfg.Format == config.FormatJSON {
		out = slog.NewJSONHandler(w, opts)
	} else {
		out = slog.NewTextHandler(w, opts)
	}
	h := &handler{levels: lv, level: lv.def, out: out}
	if p != nil && p.lp != nil {
		h.otel = otelslog.NewHandler(ScopeName, otelslog.WithLoggerProvider(p.LoggerProvider))
	}
	return slog.New(h)
}

// levelNames prints LevelTrace as TRACE rather than slog's "DEBUG-4".
func levelNames(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l == LevelTrace {
			return slog.String(slog.LevelKey, "TRACE")
		}
	}
	return a
}

type levels struct {
	def         slog.Level
	byComponent map[string]slog.Level
	min         slog.Level // lowest of all, for records whose component is not yet known
}

func (l *levels) of(component string) slog.Level {
	if lv, ok := l.byComponent[component]; ok {
		return lv
	}
	return l.def
}

type handler struct {
	levels *levels
	// level applies once a component is fixed by With; before that, the
	// record's own component attribute (or the default) decides in Handle.
	level     slog.Level
	component bool
	groups    int // attributes inside a group are not the component
	out       slog.Handler
	otel      slog.Handler // nil when logs are not exported
	// attrs from With (outside any group) are written after the record's
	// own, so every record starts with its correlation fields.
	attrs []slog.Attr
}

// leading is the order of the fields every hot-path record starts with.
var leading = []string{"correlation_id", "task_uuid", "step_uuid", "namespace", "operation", "duration_ms"}

func (h *handler) Enabled(_ context.Context, level slog.Level) bool {
	if h.component {
		return level >= h.level
	}
	return level >= h.levels.min
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	level := h.level
	if !h.component {
		level = h.levels.def
		if h.groups == 0 {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == ComponentKey {
					level = h.levels.of(a.Value.String())
					return false
				}
				return true
			})
		}
	}
	if r.Level < level {
		return nil
	}
	var errs []error
	// The bridge gets the record before trace IDs are added: OTLP log
	// records carry the span context as fields of their own.
	if h.otel != nil && h.otel.Enabled(ctx, r.Level) {
		errs = append(errs, h.otel.Handle(ctx, stringified(r)))
	}
	errs = append(errs, h.out.Handle(ctx, h.ordered(ctx, r)))
	return errors.Join(errs...)
}

// ordered rebuilds r as: the leading fields in their fixed order, trace_id
// and span_id, the record's other attributes, then the logger's With
// attributes (component, worker_id, …).
func (h *handler) ordered(ctx context.Context, r slog.Record) slog.Record {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	var first [6]slog.Attr
	var rest []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		for i, k := range leading {
			if a.Key == k {
				first[i] = a
				return true
			}
		}
		rest = append(rest, a)
		return true
	})
	for _, a := range first {
		if a.Key != "" {
			out.AddAttrs(a)
		}
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		out.AddAttrs(slog.String(TraceIDKey, sc.TraceID().String()), slog.String(SpanIDKey, sc.SpanID().String()))
	}
	out.AddAttrs(rest...)
	out.AddAttrs(h.attrs...)
	return out
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	nh := *h
	if h.groups == 0 {
		for _, a := range attrs {
			if a.Key == ComponentKey {
				nh.component = true
				nh.level = h.levels.of(a.Value.String())
			}
		}
	}
	if h.groups == 0 {
		nh.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	} else {
		nh.out = h.out.WithAttrs(attrs)
	}
	if h.otel != nil {
		nh.otel = h.otel.WithAttrs(attrs)
	}
	return &nh
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	nh := *h
	nh.groups++
	// With attributes given before the group belong outside it.
	nh.out = h.out.WithAttrs(h.attrs).WithGroup(name)
	nh.attrs = nil
	if h.otel != nil {
		nh.otel = h.otel.WithGroup(name)
	}
	return &nh
}

// stringified copies r with values that print themselves (UUIDs, errors,
// durations) turned into strings: the OTLP bridge would otherwise export a
// UUID as a list of 16 numbers.
func stringified(r slog.Record) slog.Record {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(stringifyAttr(a))
		return true
	})
	return out
}

func stringifyAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() != slog.KindAny {
		return slog.Attr{Key: a.Key, Value: v}
	}
	if rv := reflect.ValueOf(v.Any()); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return a // a nil *T would panic in its String method
	}
	switch x := v.Any().(type) {
	case error:
		return slog.String(a.Key, x.Error())
	case fmt.Stringer:
		return slog.String(a.Key, x.String())
	}
	return a
}
