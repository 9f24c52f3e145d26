package template

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Schedule is an event of a function that runs it on a schedule: SAM's
// Schedule (an EventBridge rule) or ScheduleV2 (EventBridge Scheduler).
type Schedule struct {
	// Function is the function's logical id; Event the event's name.
	Function, Event string
	// Expression is the schedule as written, intrinsics rendered as Load
	// renders them: "rate(1 minute)", or "ref:SweepSchedule" (see Expand).
	Expression string
	// Enabled is false when the event says Enabled: false or State: DISABLED.
	Enabled bool
}

// Schedules returns the schedule events of every function, sorted by
// function and event.
func (t *Template) Schedules() []Schedule {
	var out []Schedule
	res, _ := t.raw["Resources"].(map[string]any)
	for id, r := range res {
		m, _ := r.(map[string]any)
		if m["Type"] != "AWS::Serverless::Function" {
			continue
		}
		props, _ := m["Properties"].(map[string]any)
		evs, _ := props["Events"].(map[string]any)
		for name, e := range evs {
			ev, _ := e.(map[string]any)
			p, _ := ev["Properties"].(map[string]any)
			var expr any
			switch ev["Type"] {
			case "Schedule":
				expr = p["Schedule"]
			case "ScheduleV2":
				expr = p["ScheduleExpression"]
			default:
				continue
			}
			s := Schedule{Function: id, Event: name, Enabled: true}
			s.Expression, _ = expr.(string)
			if b, ok := p["Enabled"].(bool); ok && !b {
				s.Enabled = false
			}
			if st, ok := p["State"].(string); ok && st == "DISABLED" {
				s.Enabled = false
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Function != out[j].Function {
			return out[i].Function < out[j].Function
		}
		return out[i].Event < out[j].Event
	})
	return out
}

var rateRE = regexp.MustCompile(`^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$`)

// RateInterval returns the interval of an EventBridge rate expression such
// as "rate(1 minute)" or "rate(5 minutes)". It returns an error for cron
// expressions and anything else: they have no fixed interval.
func RateInterval(expr string) (time.Duration, error) {
	m := rateRE.FindStringSubmatch(expr)
	if m == nil {
		return 0, fmt.Errorf("schedule %q: only rate(N minute|minutes|hour|hours|day|days) has a fixed interval", expr)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("schedule %q: want a positive whole number", expr)
	}
	if (n == 1) != (m[2] == "minute" || m[2] == "hour" || m[2] == "day") {
		return 0, fmt.Errorf("schedule %q: EventBridge wants the singular unit for 1 and the plural otherwise", expr)
	}
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
	u := unit[m[2]]
	if u == 0 {
		u = unit[m[2][:len(m[2])-1]]
	}
	return time.Duration(n) * u, nil
}
