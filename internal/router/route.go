package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/telemetry"
)

// route delivers an EVENT or REPLY to its intent's targets, never to the
// sender itself. A message sent with ack is answered with its delivery
// receipt; a DIRECT to a service that is not connected gets
// TARGET_NOT_FOUND either way.
func (r *Router) route(ctx context.Context, req Request, m *protocol.Message) ([]byte, error) {
	id, known, err := r.identity(ctx, req)
	if err != nil {
		return nil, err
	}
	if !known {
		if pe := r.pastIdentifyDeadline(req); pe != nil {
			pe.ID = m.ID
			return nil, r.closeWith(ctx, req.ConnectionID, pe)
		}
		return errorFrame(protocol.CodeUnauthorized, m.ID, "IDENTIFY before sending %s", m.Op), nil
	}
	rec := telemetry.FromContext(ctx)
	if m.Op == protocol.OpEvent && m.ID == "" {
		m.SetID(r.cfg.NewID())
		rec.SetMessageID(m.ID)
	}
	frame := m.Delivery(protocol.Source{ID: id.ServiceID, Group: id.Group})
	if len(frame) > MaxDeliveryBytes {
		return errorFrame(protocol.CodeMessageTooBig, m.ID,
			"message of %d bytes is too big to deliver once stamped with its source (%d bytes at most)", len(frame), MaxDeliveryBytes), nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DeliveryTimeout)
	defer cancel()

	var (
		receipt protocol.Receipt
		reply   []byte
	)
	start := time.Now()
	switch m.Intent.Target {
	case protocol.TargetDirect:
		receipt, reply, err = r.direct(ctx, req.ConnectionID, m, frame)
	case protocol.TargetGroup:
		receipt, err = r.fanOut(ctx, req.ConnectionID, m.ID, frame, func(fn func([]Member) error) error {
			return r.store.GroupMembers(ctx, m.Intent.Identifier, fn)
		})
	default: // GLOBAL
		receipt, err = r.fanOut(ctx, req.ConnectionID, m.ID, frame, func(fn func([]Member) error) error {
			return r.store.AllMembers(ctx, fn)
		})
	}
	if rec != nil && m.Intent.Target != protocol.TargetDirect {
		rec.FanOut(string(m.Intent.Target), receipt.Delivered+receipt.Gone+receipt.Failed+receipt.Queued, time.Since(start))
	}
	if m.Ack && isDeliveriesFailed(err) {
		// The sender asked what became of its message: the receipt says
		// it (failed: N), rather than a gateway error without an id.
		r.log.WarnContext(ctx, "no delivery of an acknowledged message succeeded", "err", err)
		err = nil
	}
	if err != nil || reply != nil || !m.Ack {
		return reply, err
	}
	return protocol.ReceiptFrame(m.ID, receipt), nil
}

// deliveriesFailed is the error of a message none of whose deliveries
// succeeded, the recipients having been found: the gateway failed, not
// the registry.
type deliveriesFailed struct{ err error }

func (e *deliveriesFailed) Error() string { return e.err.Error() }
func (e *deliveriesFailed) Unwrap() error { return e.err }

// isDeliveriesFailed reports whether err is a *deliveriesFailed. Its
// target escapes to errors.As: a function of its own allocates it only
// when it is called.
func isDeliveriesFailed(err error) bool {
	var failed *deliveriesFailed
	return errors.As(err, &failed)
}

// direct delivers frame to the one connection of a service id. It returns
// the receipt of the delivery, or the TARGET_NOT_FOUND frame when the
// service is not connected.
func (r *Router) direct(ctx context.Context, from string, m *protocol.Message, frame []byte) (protocol.Receipt, []byte, error) {
	serviceID := m.Intent.Identifier
	notFound := func() (protocol.Receipt, []byte, error) {
		return protocol.Receipt{}, errorFrame(protocol.CodeTargetNotFound, m.ID, "service %q is not connected", serviceID), nil
	}
	to, ok := r.services.Get(serviceID)
	if !ok {
		var err error
		to, err = r.store.ServiceConnection(ctx, serviceID)
		if errors.Is(err, ErrNotFound) {
			return notFound()
		}
		if err != nil {
			return protocol.Receipt{}, nil, fmt.Errorf("look up service %s: %w", serviceID, err)
		}
		// A copy: serviceID shares its memory with the message's other
		// strings, which the cache would otherwise keep.
		r.services.Add(strings.Clone(serviceID), to)
	}
	if to == from {
		return protocol.Receipt{}, nil, nil // the sender never receives its own message
	}
	err := r.sender.Send(ctx, to, frame)
	rec := telemetry.FromContext(ctx)
	if errors.Is(err, ErrGone) {
		rec.Deliveries(0, 1, 0, 0, 0)
		r.forgetGone(ctx, to, serviceID)
		return notFound()
	}
	if err != nil {
		throttled := 0
		if errors.Is(err, ErrThrottled) {
			throttled = 1
		}
		rec.Deliveries(0, 0, 1, throttled, 0)
		return protocol.Receipt{Failed: 1}, nil, &deliveriesFailed{fmt.Errorf("deliver to %s: %w", to, err)}
	}
	rec.Deliveries(1, 0, 0, 0, 0)
	return protocol.Receipt{Delivered: 1}, nil, nil
}
