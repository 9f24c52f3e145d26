package localrun

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"testing"
	"time"
)

// The event the local scheduler sends has the fields of the scheduled
// event EventBridge sends (testdata/eventbridge/scheduled.json).
func TestScheduledEventHasEventBridgesShape(t *testing.T) {
	raw, err := os.ReadFile("../../../testdata/eventbridge/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(scheduledEvent(schedule{function: "SweeperFunction", event: "Sweep"}, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if g, w := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)); !slices.Equal(g, w) {
		t.Fatalf("got fields %v, want %v", g, w)
	}
	for _, k := range []string{"version", "detail-type", "source"} {
		if got[k] != want[k] {
			t.Errorf("%s: got %v, want %v", k, got[k], want[k])
		}
	}
}
