package telemetry

import (
	"context"
	"log/slog"
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
// once known. A line logged without one is as h writes it.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if rec := FromContext(ctx); rec != nil {
		rec.mu.Lock()
		ids := [...]struct{ k, v string }{
			{LogRequestID, rec.requestID}, {LogConnectionID, rec.connectionID},
			{LogServiceID, rec.serviceID}, {LogMessageID, rec.messageID},
		}
		rec.mu.Unlock()
		r = r.Clone()
		for _, id := range ids {
			if id.v != "" {
				r.AddAttrs(slog.String(id.k, id.v))
			}
		}
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(as)}
}

func (l logHandler) WithGroup(name string) slog.Handler {
	return logHandler{l.Handler.WithGroup(name)}
}
