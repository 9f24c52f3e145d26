package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func docs(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var ds []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("%q is not JSON: %v", line, err)
		}
		ds = append(ds, d)
	}
	return ds
}

func TestARecordIsOneDocumentWithADirectivePerDimensionSet(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, "")
	e.now = func() time.Time { return time.UnixMilli(1795860901000) }
	rec := NewRecord("prod", "req-1", "conn-1")
	rec.Message("EVENT", "GROUP", "m\"1\n") // an id to escape
	rec.SetService("svc-1")
	rec.Deliveries(3, 1, 0, 0, 2)
	rec.FanOut("GROUP", 6, 1500*time.Microsecond)
	if err := e.Emit(rec); err != nil {
		t.Fatal(err)
	}
	ds := docs(t, buf.Bytes())
	if len(ds) != 1 {
		t.Fatalf("%d documents, want 1:\n%s", len(ds), buf.Bytes())
	}
	d := ds[0]
	want := `{"Timestamp":1795860901000,"CloudWatchMetrics":[` +
		`{"Namespace":"Mastersocket","Dimensions":[["Stage","Op","Target"]],"Metrics":[{"Name":"Messages","Unit":"Count"}]},` +
		`{"Namespace":"Mastersocket","Dimensions":[["Stage"]],"Metrics":[{"Name":"Deliveries","Unit":"Count"},{"Name":"DeliveriesGone","Unit":"Count"},{"Name":"DeliveriesFailed","Unit":"Count"},{"Name":"DeliveriesThrottled","Unit":"Count"},{"Name":"DeliveriesQueued","Unit":"Count"}]},` +
		`{"Namespace":"Mastersocket","Dimensions":[["Stage","Target"]],"Metrics":[{"Name":"FanOutRecipients","Unit":"Count"},{"Name":"FanOutDuration","Unit":"Milliseconds"}]}]}`
	meta, _ := json.Marshal(d["_aws"])
	var wantMeta any
	json.Unmarshal([]byte(want), &wantMeta)
	wantJSON, _ := json.Marshal(wantMeta)
	if string(meta) != string(wantJSON) {
		t.Errorf("_aws:\n got %s\nwant %s", meta, wantJSON)
	}
	for k, v := range map[string]any{"Stage": "prod", "Op": "EVENT", "Target": "GROUP", "Messages": 1.0,
		"Deliveries": 3.0, "DeliveriesGone": 1.0, "DeliveriesFailed": 0.0, "DeliveriesQueued": 2.0,
		"FanOutRecipients": 6.0, "FanOutDuration": 1.5,
		"requestId": "req-1", "connectionId": "conn-1", "serviceId": "svc-1", "messageId": "m\"1\n"} {
		if d[k] != v {
			t.Errorf("%s = %#v, want %#v", k, d[k], v)
		}
	}
}

// A document holds one value of each dimension: the ERROR codes beyond the
// first go in documents of their own.
func TestEachErrorCodeBeyondTheFirstHasADocument(t *testing.T) {
	var buf bytes.Buffer
	rec := NewRecord("dev", "", "")
	rec.Add(ConnectionsSwept, 4)
	rec.AddErrors("PING_TIMEOUT", 3)
	rec.AddErrors("IDENTIFY_FAILED", 1)
	rec.AddErrors("PING_TIMEOUT", 0) // nothing
	if err := NewEmitter(&buf, "ns").Emit(rec); err != nil {
		t.Fatal(err)
	}
	ds := docs(t, buf.Bytes())
	if len(ds) != 2 {
		t.Fatalf("%d documents, want 2:\n%s", len(ds), buf.Bytes())
	}
	if ds[0]["Code"] != "PING_TIMEOUT" || ds[0]["ErrorsSent"] != 3.0 || ds[0]["ConnectionsSwept"] != 4.0 {
		t.Errorf("first document: %v", ds[0])
	}
	if ds[1]["Code"] != "IDENTIFY_FAILED" || ds[1]["ErrorsSent"] != 1.0 || ds[1]["ConnectionsSwept"] != nil {
		t.Errorf("second document: %v", ds[1])
	}
}

func TestNothingCountedWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, "ns")
	rec := NewRecord("dev", "r", "c")
	rec.SetService("s")
	if err := e.Emit(rec); err != nil || buf.Len() != 0 {
		t.Errorf("an empty record wrote %q, %v", buf.Bytes(), err)
	}
	var none *Record // a context without a record
	none.Add(Messages, 1)
	none.Message("PING", TargetNone, "")
	none.Identify(OutcomeOK)
	none.ErrorSent("X")
	none.Deliveries(1, 1, 1, 1, 1)
	none.FanOut("GROUP", 1, time.Second)
	if err := e.Emit(none); err != nil || buf.Len() != 0 {
		t.Errorf("a nil record wrote %q, %v", buf.Bytes(), err)
	}
	var off *Emitter
	if err := off.Emit(NewRecord("dev", "", "")); err != nil {
		t.Errorf("a nil emitter: %v", err)
	}
	if FromContext(context.Background()) != nil {
		t.Error("a bare context carries a record")
	}
}

func TestLogLinesCarryTheRecordsIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("function", "message")
	rec := NewRecord("prod", "req-1", "conn-1")
	ctx := NewContext(context.Background(), rec)
	log.InfoContext(ctx, "before")
	rec.SetService("svc-1")
	rec.Message("EVENT", "DIRECT", "m1")
	log.InfoContext(ctx, "after")
	log.Info("without a context")
	ds := docs(t, buf.Bytes())
	if len(ds) != 3 {
		t.Fatalf("%d lines:\n%s", len(ds), buf.Bytes())
	}
	check := func(d map[string]any, want map[string]any) {
		t.Helper()
		for _, k := range []string{"requestId", "connectionId", "serviceId", "messageId", "function"} {
			if d[k] != want[k] {
				t.Errorf("%v: %s = %v, want %v", d["msg"], k, d[k], want[k])
			}
		}
	}
	check(ds[0], map[string]any{"requestId": "req-1", "connectionId": "conn-1", "function": "message"})
	check(ds[1], map[string]any{"requestId": "req-1", "connectionId": "conn-1", "serviceId": "svc-1", "messageId": "m1", "function": "message"})
	check(ds[2], map[string]any{"function": "message"})
}

func TestTheIDsStayTopLevelInALoggerWithGroups(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("function", "fanout").
		WithGroup("batch").With("size", 3).WithGroup("post")
	rec := NewRecord("prod", "req-1", "conn-1")
	rec.SetService("svc-1")
	log.InfoContext(NewContext(context.Background(), rec), "gone", "status", 410)
	log.Info("without a context", "status", 200)
	ds := docs(t, buf.Bytes())
	if len(ds) != 2 {
		t.Fatalf("%d lines:\n%s", len(ds), buf.Bytes())
	}
	for i, d := range ds {
		batch, _ := d["batch"].(map[string]any)
		post, _ := batch["post"].(map[string]any)
		if d["function"] != "fanout" || batch["size"] != 3.0 || post["status"] == nil {
			t.Errorf("line %d lost its groups: %v", i, d)
		}
		if _, ok := batch["requestId"]; ok {
			t.Errorf("line %d has the ids inside its group: %v", i, d)
		}
	}
	if d := ds[0]; d["requestId"] != "req-1" || d["connectionId"] != "conn-1" || d["serviceId"] != "svc-1" {
		t.Errorf("the ids are not top-level keys: %v", d)
	}
	if _, ok := ds[1]["requestId"]; ok {
		t.Errorf("a line without a record has ids: %v", ds[1])
	}
}

func TestTheCatalogueIsComplete(t *testing.T) {
	names := map[string]bool{}
	for m, def := range Catalogue {
		if def.Name == "" || def.Unit == "" || len(def.Dimensions) == 0 || def.Dimensions[0] != DimStage || def.Doc == "" || len(def.Functions) == 0 {
			t.Errorf("metric %d: incomplete definition %+v", m, def)
		}
		if names[def.Name] {
			t.Errorf("%s is defined twice", def.Name)
		}
		names[def.Name] = true
	}
}

// docs/OPERATIONS.md lists every metric as the code writes it: its name,
// unit, dimensions and the functions that write it.
func TestTheOperationsGuideListsTheCatalogue(t *testing.T) {
	doc, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			if name, rest, ok := strings.Cut(name, "` | "); ok {
				rows[name] = rest
			}
		}
	}
	for _, def := range Catalogue {
		want := def.Unit + " | " + strings.Join(def.Dimensions, ", ") + " | " + strings.Join(def.Functions, ", ") + " | "
		if got, ok := rows[def.Name]; !ok || !strings.HasPrefix(got, want) {
			t.Errorf("docs/OPERATIONS.md's row of %s: %q, want it to start %q", def.Name, got, want)
		}
	}
}
