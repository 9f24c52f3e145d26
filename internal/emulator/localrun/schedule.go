package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/mastersocket/mastersocket/internal/emulator/template"
)

// schedule is a function that runs on a schedule, as EventBridge would run
// it: every interval, one run at a time.
type schedule struct {
	function, event string
	// every is the interval; 0 when the schedule does not run on its own
	// (--sweep-every off, or a cron expression): RunSchedules still runs it.
	every   time.Duration
	source  string // where the interval comes from, for the summary
	timeout time.Duration
}

// schedulesOf returns the template's enabled schedules with their
// intervals: the template's rate(...), or every when it is positive. With a
// negative every, or for a schedule that is not a rate (cron, with a
// warning), the interval is 0: the function runs only when asked.
func schedulesOf(tmpl *template.Template, env envResolver, every time.Duration, log *slog.Logger) ([]schedule, error) {
	functions := tmpl.Functions()
	var out []schedule
	for _, sc := range tmpl.Schedules() {
		if !sc.Enabled {
			continue
		}
		expr, err := template.Expand(sc.Expression, env.lookup())
		if err != nil {
			return nil, fmt.Errorf("function %s, event %s: %w", sc.Function, sc.Event, err)
		}
		s := schedule{function: sc.Function, event: sc.Event, every: every, source: "--sweep-every"}
		switch {
		case every < 0:
			s.every, s.source = 0, "--sweep-every off"
		case every == 0:
			if s.every, err = template.RateInterval(expr); err != nil {
				log.Warn("a schedule the local gateway cannot run: give --sweep-every to run it at an interval", "function", sc.Function, "err", err)
				s.every, s.source = 0, expr+", not emulated"
				break
			}
			s.source = expr
		}
		s.timeout = time.Duration(functions[sc.Function].Timeout) * time.Second
		if s.timeout <= 0 {
			s.timeout = 3 * time.Second // Lambda's default
		}
		out = append(out, s)
	}
	return out, nil
}

// scheduledEvent is the event EventBridge sends a function on a schedule.
func scheduledEvent(sc schedule, now time.Time) events.EventBridgeEvent {
	return events.EventBridgeEvent{
		Version:    "0",
		ID:         uuid.NewString(),
		DetailType: "Scheduled Event",
		Source:     "aws.events",
		AccountID:  localAccount,
		Time:       now.UTC().Truncate(time.Second),
		Region:     localRegion,
		Resources:  []string{"arn:aws:events:" + localRegion + ":" + localAccount + ":rule/mastersocket-local-" + sc.function + sc.event},
		Detail:     json.RawMessage("{}"),
	}
}

// runSchedule invokes a scheduled function every interval until ctx ends.
func (s *Server) runSchedule(ctx context.Context, sc schedule) {
	defer s.bg.Done()
	if sc.every <= 0 {
		return
	}
	t := time.NewTicker(sc.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.invokeScheduled(ctx, sc)
	}
}

// RunSchedules runs every scheduled function once, now, as its schedule
// would, and returns the first error. Tests and the soak sweep with it.
func (s *Server) RunSchedules(ctx context.Context) error {
	for _, sc := range s.schedules {
		if _, err := s.invokeScheduled(ctx, sc); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) invokeScheduled(ctx context.Context, sc schedule) ([]byte, error) {
	payload, err := json.Marshal(scheduledEvent(sc, time.Now()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.timeout)
	defer cancel()
	start := time.Now()
	out, err := s.invokers.Invoke(ctx, sc.function, payload)
	attrs := []any{"function", sc.function, "event", sc.event, "duration", ms(time.Since(start))}
	if err != nil {
		s.log.Warn("SCHEDULE", append(attrs, "err", err.Error())...)
		return nil, fmt.Errorf("%s: %w", sc.function, err)
	}
	s.log.Info("SCHEDULE", append(attrs, "result", string(out))...)
	return out, nil
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
