package telemetry

import (
	"context"
	"log/slog"
	"slices"
)

// Keys of the ids that the log lines of an invocation, and its metric
// document, carry.
const (
	LogRequestID    = "requestId"
	LogConnectionID = "connectionId"
	LogServiceID    = "serviceId"
	LogMessageID    = "messageId"
)

// LogHandler wraps h so that every line logged with a context carrying a
// Record (the slog ...Context methods) carries the record's ids: the API
// Gateway request id, the connection id, and the service and message ids
// once known. They are top-level keys even in a line of a logger with
// groups (Logger.WithGroup), where a search for them looks. A line logged
// without a record is as h writes it.
func LogHandler(h slog.Handler) slog.Handler { return &logHandler{base: h} }

// logHandler adds the ids to the record while no group is open. Past the
// first group, it keeps the handler as it was before it (base) and what
// was done since (steps), to replay them on base with the ids added.
type logHandler struct {
	base  slog.Handler
	steps []step
	cur   slog.Handler // base with the steps; nil while there are none
}

// step is a WithGroup (group set) or WithAttrs done after the first group.
type step struct {
	group string
	attrs []slog.Attr
}

func (l *logHandler) handler() slog.Handler {
	if l.cur != nil {
		return l.cur
	}
	return l.base
}

func (l *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.handler().Enabled(ctx, level)
}

func (l *logHandler) Handle(ctx context.Context, r slog.Record) error {
	rec := FromContext(ctx)
	if rec == nil {
		return l.handler().Handle(ctx, r)
	}
	rec.mu.Lock()
	ids := rec.idsLocked()
	rec.mu.Unlock()
	attrs := make([]slog.Attr, 0, len(ids))
	for _, id := range ids {
		if id.v != "" {
			attrs = append(attrs, slog.String(id.k, id.v))
		}
	}
	if len(l.steps) == 0 {
		r = r.Clone()
		r.AddAttrs(attrs...)
		return l.base.Handle(ctx, r)
	}
	h := l.base.WithAttrs(attrs)
	for _, s := range l.steps {
		if s.attrs != nil {
			h = h.WithAttrs(s.attrs)
		} else {
			h = h.WithGroup(s.group)
		}
	}
	return h.Handle(ctx, r)
}

func (l *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return l
	}
	if len(l.steps) == 0 {
		return &logHandler{base: l.base.WithAttrs(as)}
	}
	return &logHandler{base: l.base, steps: append(slices.Clip(l.steps), step{attrs: as}), cur: l.cur.WithAttrs(as)}
}

func (l *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	return &logHandler{base: l.base, steps: append(slices.Clip(l.steps), step{group: name}), cur: l.handler().WithGroup(name)}
}
