package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/mastersocket/mastersocket/internal/protocol"
)

// route delivers an EVENT or REPLY to its intent's targets, never to the
// sender itself. A message sent with ack is answered with its delivery
// receipt; a DIRECT to a service that is not connected gets
// TARGET_NOT_FOUND either way.
func (r *Router) route(ctx context.Context, req Request, m *protocol.Message) ([]byte, error) {
	id, err := r.identity(ctx, req)
	if err != nil {
		return nil, err
	}
	if id == nil {
		if pe := r.pastIdentifyDeadline(req); pe != nil {
			pe.ID = m.ID
			return nil, r.closeWith(ctx, req.ConnectionID, pe)
		}
		return errorFrame(protocol.CodeUnauthorized, m.ID, "IDENTIFY before sending %s", m.Op), nil
	}
	if m.Op == protocol.OpEvent && m.ID == "" {
		m.SetID(r.cfg.NewID())
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
	switch m.Intent.Target {
	case protocol.TargetDirect:
		receipt, reply, err = r.direct(ctx, req.ConnectionID, m, frame)
	case protocol.TargetGroup:
		receipt, err = r.fanOut(ctx, req.ConnectionID, frame, func(fn func([]Member) error) error {
			return r.store.GroupMembers(ctx, m.Intent.Identifier, fn)
		})
	default: // GLOBAL
		receipt, err = r.fanOut(ctx, req.ConnectionID, frame, func(fn func([]Member) error) error {
			return r.store.AllMembers(ctx, fn)
		})
	}
	var failed *deliveriesFailed
	if m.Ack && errors.As(err, &failed) {
		// The sender asked what became of its message: the receipt says
		// it (failed: N), rather than a gateway error without an id.
		r.log.Warn("no delivery of an acknowledged message succeeded", "connection", req.ConnectionID, "id", m.ID, "err", err)
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
		r.services.Add(serviceID, to)
	}
	if to == from {
		return protocol.Receipt{}, nil, nil // the sender never receives its own message
	}
	err := r.sender.Send(ctx, to, frame)
	if errors.Is(err, ErrGone) {
		r.forgetGone(ctx, to, serviceID)
		return notFound()
	}
	if err != nil {
		return protocol.Receipt{Failed: 1}, nil, &deliveriesFailed{fmt.Errorf("deliver to %s: %w", to, err)}
	}
	return protocol.Receipt{Delivered: 1}, nil, nil
}

// fanOut delivers frame to every member that list yields, except the sender,
// with at most cfg.FanOut deliveries in flight. Gone recipients are removed.
// Delivery is at most once: failures are logged, and fanOut returns an error
// only when listing the members failed or every delivery failed. It returns
// what became of the deliveries.
func (r *Router) fanOut(ctx context.Context, from string, frame []byte, list func(func([]Member) error) error) (protocol.Receipt, error) {
	var (
		wg                       sync.WaitGroup
		slots                    = make(chan struct{}, r.cfg.FanOut)
		recipients, gone, failed atomic.Int64
		firstErr                 error
		errOnce                  sync.Once
	)
	deliver := func(to Member) {
		defer func() {
			if p := recover(); p != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = fmt.Errorf("panic delivering to %s: %v", to.ConnectionID, p) })
			}
			<-slots
			wg.Done()
		}()
		err := r.sender.Send(ctx, to.ConnectionID, frame)
		switch {
		case err == nil:
		case errors.Is(err, ErrGone):
			gone.Add(1)
			r.forgetGone(ctx, to.ConnectionID, to.ServiceID)
		default:
			failed.Add(1)
			errOnce.Do(func() { firstErr = err })
		}
	}
	listErr := list(func(page []Member) error {
		for _, mem := range page {
			if mem.ConnectionID == from {
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			recipients.Add(1)
			wg.Add(1)
			go deliver(mem)
		}
		return nil
	})
	wg.Wait()
	r.log.Debug("fan-out done", "recipients", recipients.Load(), "gone", gone.Load(), "failed", failed.Load())
	receipt := protocol.Receipt{
		Delivered: int(recipients.Load() - gone.Load() - failed.Load()),
		Gone:      int(gone.Load()),
		Failed:    int(failed.Load()),
	}
	if n := failed.Load(); n > 0 {
		r.log.Warn("deliveries failed", "failed", n, "recipients", recipients.Load(), "err", firstErr)
		if n == recipients.Load() && listErr == nil {
			return receipt, &deliveriesFailed{fmt.Errorf("all %d deliveries failed: %w", n, firstErr)}
		}
	}
	if listErr != nil {
		return receipt, fmt.Errorf("list recipients: %w", listErr)
	}
	return receipt, nil
}
