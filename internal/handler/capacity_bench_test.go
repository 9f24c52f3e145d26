package handler_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/sweep"
	"github.com/mastersocket/mastersocket/internal/token"
)

// BenchmarkDynamoDBWork measures the DynamoDB work of one message, in read
// and write capacity units as DynamoDB reports them (ReturnConsumedCapacity
// TOTAL on every call), for mastersocket ("ours": the handlers running the
// real router on the DynamoDB store) and for a Scan-per-message design
// ("scan": AWS's simple-websockets-chat-app, extended only as far as DIRECT
// and GROUP need), on tables of the same connections. docs/DATAMODEL.md
// explains the figures.
//
// The scan design's table is keyed by connectionId alone, as the chat
// sample's is, and each case gives it the smallest item that case needs,
// its best case: {connectionId} for GLOBAL (the chat sample's item),
// {connectionId, group} for GROUP (the attribute its FilterExpression
// reads), {connectionId, serviceId, group} for DIRECT (its filter, and the
// sender's identity that stamps the delivered message's source) and
// IDENTIFY (which sets them with one UpdateItem, after a strongly
// consistent GetItem of the token in a table of its own, as ours reads
// it). Every message Scans the whole table, eventually consistent,
// projecting connectionId, as the sample does; a filtered Scan consumes the
// units of everything it reads. Like ours, it caches sender identities in
// a warm container: DIRECT-cold adds one GetItem of the sender.
//
// Ours runs in a container that has seen the sender (and, for DIRECT-warm,
// the target) before, except DIRECT-cold: a fresh container, empty caches.
// IDENTIFY is an anonymous connection's, in a container that has joined the
// current buckets before; the first IDENTIFY of a cold container, and the
// $connect and $disconnect around each IDENTIFY, are logged.
//
// The tables are in a steady state: the connections' ages spread evenly
// over API Gateway's 2 hours; ours are written by the store's BulkLoad in
// its own layout. DynamoDB Local reports consumed capacity by AWS's rules
// for GetItem, Query, Scan, PutItem, UpdateItem, DeleteItem and
// BatchWriteItem (TestItemSizeIsWhatDynamoDBBills checks item sizes
// against it), but not in three cases, where the meter computes it by
// AWS's published rules instead (the log counts them): a TransactWriteItems
// (DynamoDB Local reports 4 whatever its items; AWS charges 2 write units
// per KB of each item, the larger of its sizes before and after, and index
// writes as plain writes), a Query or Scan that reads nothing (0 on
// DynamoDB Local; AWS charges the minimum, 0.5 or 1 unit) and a write
// refused by its condition (an error without consumed capacity on DynamoDB
// Local; AWS charges the write, at least 1 unit).
//
// The whole run takes about a minute, most of it writing the tables of
// 100,000 connections. Run it with make bench, or:
//
//	scripts/dynamodb-local.sh run go test -run '^$' -bench DynamoDBWork -benchtime 3x ./internal/handler/
func BenchmarkDynamoDBWork(b *testing.B) {
	db := dynamotest.Client(b)
	w := &work{db: db, tables: map[string]*tableShape{}}
	b.Cleanup(func() {
		for _, f := range w.cleanups {
			f()
		}
	})
	cases := []struct {
		name  string
		ours  func(*testing.B, *work)
		scan  func(*testing.B, *work)
		conns int
	}{
		{"IDENTIFY", oursIdentify, scanIdentify, mixedSize},
		{"DIRECT-cold", func(b *testing.B, w *work) { oursDirect(b, w, true) }, func(b *testing.B, w *work) { scanDirect(b, w, true) }, mixedSize},
		{"DIRECT-warm", func(b *testing.B, w *work) { oursDirect(b, w, false) }, func(b *testing.B, w *work) { scanDirect(b, w, false) }, mixedSize},
		{"GROUP-10", func(b *testing.B, w *work) { oursFanOut(b, w, w.mixed(b), "group-10") },
			func(b *testing.B, w *work) { scanFanOut(b, w, w.scanMixedGroups(b), "group-10") }, mixedSize},
		{"GROUP-1000", func(b *testing.B, w *work) { oursFanOut(b, w, w.mixed(b), "group-1000") },
			func(b *testing.B, w *work) { scanFanOut(b, w, w.scanMixedGroups(b), "group-1000") }, mixedSize},
		{"GROUP-1000-whole-table", func(b *testing.B, w *work) { oursFanOut(b, w, w.whole(b), "group-1000") },
			func(b *testing.B, w *work) { scanFanOut(b, w, w.scanWhole(b), "group-1000") }, 1000},
		{"GLOBAL-100", func(b *testing.B, w *work) { oursFanOut(b, w, w.global(b, 100), "") },
			func(b *testing.B, w *work) { scanFanOut(b, w, w.scanChat(b, 100), "") }, 100},
		{"GLOBAL-1000", func(b *testing.B, w *work) { oursFanOut(b, w, w.whole(b), "") },
			func(b *testing.B, w *work) { scanFanOut(b, w, w.scanChat(b, 1000), "") }, 1000},
		{"GLOBAL-10000", func(b *testing.B, w *work) { oursFanOut(b, w, w.mixed(b), "") },
			func(b *testing.B, w *work) { scanFanOut(b, w, w.scanChat(b, mixedSize), "") }, mixedSize},
		{"GLOBAL-100000", func(b *testing.B, w *work) { oursFanOut(b, w, w.global(b, 100000), "") },
			func(b *testing.B, w *work) { scanFanOut(b, w, w.scanChat(b, 100000), "") }, 100000},
	}
	for _, design := range []string{"ours", "scan"} {
		b.Run(design, func(b *testing.B) {
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					if design == "ours" {
						c.ours(b, w)
					} else {
						c.scan(b, w)
					}
					b.ReportMetric(float64(c.conns), "table-conns")
				})
			}
		})
	}
}

// mixedSize is the table of most cases: 10,000 connections, in group-10
// (10), group-1000 (1,000) and 89 groups of about 101 (team-NNN).
const mixedSize = 10000

// --- the meter ---------------------------------------------------------

// meter wraps the DynamoDB client: it asks every call for its consumed
// capacity and adds it, read and write units apart, with the calls, to the
// tally it was started with (calls between stop and the next start are not
// counted). It implements dynamostore.API, and Scan for the scan design.
type meter struct {
	db *dynamodb.Client
	w  *work

	mu  sync.Mutex
	cur *tally
}

var _ dynamostore.API = (*meter)(nil)

// tally is what a meter counted.
type tally struct {
	rcu, wcu   float64
	calls      int
	recipients int64
	byOp       map[string]float64 // units by operation, for the log
	corrected  map[string]int     // calls whose units the meter computed
}

func newMeter(w *work) *meter { return &meter{db: w.db, w: w} }

func newTally() *tally { return &tally{byOp: map[string]float64{}, corrected: map[string]int{}} }

// start makes the meter count into t the calls that follow, until stop.
func (m *meter) start(t *tally) { m.mu.Lock(); m.cur = t; m.mu.Unlock() }
func (m *meter) stop()          { m.mu.Lock(); m.cur = nil; m.mu.Unlock() }

// report reports t per message of b.N, and logs its breakdown.
func (t *tally) report(b *testing.B, design string) {
	n := float64(b.N)
	b.ReportMetric(t.rcu/n, "RCU/msg")
	b.ReportMetric(t.wcu/n, "WCU/msg")
	b.ReportMetric(float64(t.calls)/n, "calls/msg")
	b.ReportMetric(float64(t.recipients)/n, "recipients/msg")
	t.log(b, design, "message", b.N)
}

// log logs t, the work of n operations of a kind (message, $connect...).
func (t *tally) log(b *testing.B, design, what string, n int) {
	var parts []string
	for _, op := range sortedKeys(t.byOp) {
		parts = append(parts, fmt.Sprintf("%s %.1f", op, t.byOp[op]))
	}
	var fixed []string
	for _, op := range sortedKeys(t.corrected) {
		fixed = append(fixed, fmt.Sprintf("%s ×%d", op, t.corrected[op]))
	}
	if len(fixed) == 0 {
		fixed = []string{"none"}
	}
	f := float64(n)
	b.Logf("%s, %d × %s: %.2f RCU, %.2f WCU, %.2f calls each; units by operation, all of them: %s; calls whose units the meter computed by AWS's rules: %s",
		design, n, what, t.rcu/f, t.wcu/f, float64(t.calls)/f, strings.Join(parts, ", "), strings.Join(fixed, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (m *meter) add(op string, read bool, units float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.cur
	if t == nil {
		return
	}
	t.calls++
	if read {
		t.rcu += units
	} else {
		t.wcu += units
	}
	t.byOp[op] += units
}

func (m *meter) note(why string) {
	m.mu.Lock()
	if m.cur != nil {
		m.cur.corrected[why]++
	}
	m.mu.Unlock()
}

func (m *meter) posted() {
	m.mu.Lock()
	if m.cur != nil {
		m.cur.recipients++
	}
	m.mu.Unlock()
}

func units(c *types.ConsumedCapacity) float64 {
	if c == nil {
		return 0
	}
	return aws.ToFloat64(c.CapacityUnits)
}

// readMinimum is what AWS charges a Query or Scan that reads nothing.
func (m *meter) readMinimum(op string, consistent *bool, got float64) float64 {
	if got > 0 {
		return got
	}
	m.note(op + " that read nothing")
	if aws.ToBool(consistent) {
		return 1
	}
	return 0.5
}

func (m *meter) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := m.db.GetItem(ctx, in, o...)
	if err != nil {
		return out, err
	}
	m.add("GetItem", true, units(out.ConsumedCapacity))
	return out, nil
}

func (m *meter) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := m.db.Query(ctx, in, o...)
	if err != nil {
		return out, err
	}
	op := "Query"
	if in.IndexName != nil {
		op += " index/" + *in.IndexName
	}
	m.add(op, true, m.readMinimum("Query", in.ConsistentRead, units(out.ConsumedCapacity)))
	return out, nil
}

func (m *meter) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := m.db.Scan(ctx, in, o...)
	if err != nil {
		return out, err
	}
	m.add("Scan", true, m.readMinimum("Scan", in.ConsistentRead, units(out.ConsumedCapacity)))
	return out, nil
}

// refused charges a single-item write refused by its condition as AWS
// does: the write units of the item as it is (at least 1).
func (m *meter) refused(ctx context.Context, op, table string, key map[string]types.AttributeValue, err error) {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return
	}
	m.note(op + " refused by its condition")
	m.add(op, false, writeUnits(itemSize(m.peek(ctx, table, key))))
}

// peek reads an item strongly without metering it.
func (m *meter) peek(ctx context.Context, table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	out, err := m.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil
	}
	return out.Item
}

func (m *meter) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := m.db.PutItem(ctx, in, o...)
	if err != nil {
		m.refused(ctx, "PutItem", *in.TableName, m.w.keyOf(*in.TableName, in.Item), err)
		return out, err
	}
	m.add("PutItem", false, units(out.ConsumedCapacity))
	return out, nil
}

func (m *meter) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := m.db.UpdateItem(ctx, in, o...)
	if err != nil {
		m.refused(ctx, "UpdateItem", *in.TableName, in.Key, err)
		return out, err
	}
	m.add("UpdateItem", false, units(out.ConsumedCapacity))
	return out, nil
}

func (m *meter) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := m.db.DeleteItem(ctx, in, o...)
	if err != nil {
		m.refused(ctx, "DeleteItem", *in.TableName, in.Key, err)
		return out, err
	}
	m.add("DeleteItem", false, units(out.ConsumedCapacity))
	return out, nil
}

func (m *meter) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := m.db.BatchWriteItem(ctx, in, o...)
	if err != nil {
		return out, err
	}
	var u float64
	for _, c := range out.ConsumedCapacity {
		u += units(&c)
	}
	m.add("BatchWriteItem", false, u)
	return out, nil
}

// TransactWriteItems computes the units by AWS's rules, from each item's
// sizes before and after (DynamoDB Local reports 4 for any transaction).
// The store no longer makes transactions; the previous layout's IDENTIFY
// was one, and its figures in docs/DATAMODEL.md were measured so.
func (m *meter) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	type target struct {
		table  string
		key    map[string]types.AttributeValue
		before map[string]types.AttributeValue
	}
	targets := make([]target, len(in.TransactItems))
	for i, it := range in.TransactItems {
		var t target
		switch {
		case it.Put != nil:
			t.table, t.key = *it.Put.TableName, m.w.keyOf(*it.Put.TableName, it.Put.Item)
		case it.Update != nil:
			t.table, t.key = *it.Update.TableName, it.Update.Key
		case it.Delete != nil:
			t.table, t.key = *it.Delete.TableName, it.Delete.Key
		case it.ConditionCheck != nil:
			t.table, t.key = *it.ConditionCheck.TableName, it.ConditionCheck.Key
		}
		t.before = m.peek(ctx, t.table, t.key)
		targets[i] = t
	}
	out, err := m.db.TransactWriteItems(ctx, in, o...)
	m.note("TransactWriteItems")
	var u float64
	for _, t := range targets {
		after := t.before
		if err == nil {
			after = m.peek(ctx, t.table, t.key)
		}
		u += 2 * writeUnits(max(itemSize(t.before), itemSize(after)))
		if err == nil {
			u += m.w.indexWrites(t.table, t.before, after)
		}
	}
	m.add("TransactWriteItems", false, u)
	return out, err
}

// writeUnits is what a write of an item of size bytes costs: 1 per KB, at
// least 1.
func writeUnits(size int) float64 {
	return max(1, math.Ceil(float64(size)/1024))
}

// --- item sizes, by AWS's rules ---------------------------------------

// itemSize is the size DynamoDB bills for an item: each attribute's name in
// bytes plus its value's size.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize: one byte per two significant digits, plus one.
func numberSize(s string) int {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "-+")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	s = strings.ReplaceAll(s, ".", "")
	s = strings.Trim(s, "0")
	n := (len(s)+1)/2 + 1
	if neg {
		n++
	}
	return n
}

// TestItemSize checks itemSize against the write units DynamoDB Local
// charges: an item of exactly 1,024 bytes costs 1, one byte more costs 2.
func TestItemSizeIsWhatDynamoDBBills(t *testing.T) {
	db := dynamotest.Client(t)
	table := dynamotest.NewTable(t, db)
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	items := []map[string]types.AttributeValue{
		{"x": n("1767225600")},
		{"x": n("1767225600123")},
		{"x": n("1")},
		{"m": &types.AttributeValueMemberSS{Value: []string{"R1kmxc2VNjMCFIA=", "L0SM9cOFvHcCIhw="}}},
		{"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"R1kmxc2VNjMCFIA=": n("1"), "b": s("cd")}}},
		{"m": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("ab"), n("12")}}},
		{"m": &types.AttributeValueMemberBS{Value: [][]byte{make([]byte, 11), {1}}}},
		{"m": &types.AttributeValueMemberBOOL{Value: true}},
	}
	for i, item := range items {
		item["pk"], item["sk"] = s(fmt.Sprintf("size-%d", i)), s("x")
		base := itemSize(item)
		for _, pad := range []int{1024 - base - 1, 1024 - base} {
			item["P"] = s(strings.Repeat("x", pad))
			ctx := context.Background()
			if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{"pk": item["pk"], "sk": item["sk"]}}); err != nil {
				t.Fatal(err)
			}
			out, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item, ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal})
			if err != nil {
				t.Fatal(err)
			}
			want := writeUnits(itemSize(item))
			if got := units(out.ConsumedCapacity); got != want {
				t.Errorf("item %d of %d bytes by itemSize: DynamoDB Local charges %v write units, want %v", i, itemSize(item), got, want)
			}
		}
	}
}

// --- tables ------------------------------------------------------------

// tableShape is what the meter needs to know of a table: its key and its
// global secondary indexes.
type tableShape struct {
	keys    []string
	indexes []indexShape
}

type indexShape struct {
	keys      []string
	projected map[string]bool // nil: every attribute
}

// work holds the tables, filled once and shared by the cases, and
// deleted when the benchmark ends.
type work struct {
	db       *dynamodb.Client
	cleanups []func()

	mu     sync.Mutex
	tables map[string]*tableShape
	sets   sync.Map // name → *dataset, made once
}

func (w *work) shapeOf(table string) *tableShape {
	w.mu.Lock()
	defer w.mu.Unlock()
	if sh, ok := w.tables[table]; ok {
		return sh
	}
	out, err := w.db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		panic(fmt.Sprintf("describe table %s: %v", table, err)) // the benchmark made it
	}
	sh := &tableShape{}
	for _, k := range out.Table.KeySchema {
		sh.keys = append(sh.keys, *k.AttributeName)
	}
	for _, g := range out.Table.GlobalSecondaryIndexes {
		ix := indexShape{}
		for _, k := range g.KeySchema {
			ix.keys = append(ix.keys, *k.AttributeName)
		}
		switch g.Projection.ProjectionType {
		case types.ProjectionTypeKeysOnly:
			ix.projected = map[string]bool{}
		case types.ProjectionTypeInclude:
			ix.projected = map[string]bool{}
			for _, a := range g.Projection.NonKeyAttributes {
				ix.projected[a] = true
			}
		}
		sh.indexes = append(sh.indexes, ix)
	}
	w.tables[table] = sh
	return sh
}

func (w *work) keyOf(table string, item map[string]types.AttributeValue) map[string]types.AttributeValue {
	key := map[string]types.AttributeValue{}
	for _, k := range w.shapeOf(table).keys {
		key[k] = item[k]
	}
	return key
}

// indexWrites is what keeping the table's indexes costs when an item
// changes from before to after (nil: no item): a write per index entry
// put or deleted, 1 unit per KB, as plain writes.
func (w *work) indexWrites(table string, before, after map[string]types.AttributeValue) float64 {
	sh := w.shapeOf(table)
	var u float64
	for _, ix := range sh.indexes {
		eb, ea := ix.entry(sh.keys, before), ix.entry(sh.keys, after)
		switch {
		case eb == nil && ea == nil:
		case eb == nil:
			u += writeUnits(itemSize(ea))
		case ea == nil:
			u += writeUnits(itemSize(eb))
		case !reflect.DeepEqual(ix.keyOf(eb), ix.keyOf(ea)):
			u += writeUnits(itemSize(eb)) + writeUnits(itemSize(ea))
		case !reflect.DeepEqual(eb, ea):
			u += writeUnits(max(itemSize(eb), itemSize(ea)))
		}
	}
	return u
}

func (ix indexShape) keyOf(entry map[string]types.AttributeValue) map[string]types.AttributeValue {
	key := map[string]types.AttributeValue{}
	for _, k := range ix.keys {
		key[k] = entry[k]
	}
	return key
}

// entry is an item's entry in the index, or nil if the item is not in it.
func (ix indexShape) entry(tableKeys []string, item map[string]types.AttributeValue) map[string]types.AttributeValue {
	if item == nil {
		return nil
	}
	e := map[string]types.AttributeValue{}
	for _, k := range ix.keys {
		v, ok := item[k]
		if !ok {
			return nil
		}
		e[k] = v
	}
	for _, k := range tableKeys {
		e[k] = item[k]
	}
	for name, v := range item {
		if ix.projected == nil || ix.projected[name] {
			e[name] = v
		}
	}
	return e
}

// newKeyTable creates a table keyed by one string attribute, on demand, as
// the chat sample's, and deletes it when the benchmark ends.
func (w *work) newKeyTable(b *testing.B, hashKey string) string {
	b.Helper()
	db := w.db
	name := fmt.Sprintf("mst-scan-%d-%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	ctx := context.Background()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(hashKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(hashKey), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		b.Fatal(err)
	}
	w.mu.Lock()
	w.cleanups = append(w.cleanups, func() {
		db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	w.mu.Unlock()
	return name
}

var tableSeq atomic.Int64

// dataset is a table's connections: the same for both designs.
type dataset struct {
	conns []router.Connection
	table string // ours: the store's table; scan: the connections table
	byGrp map[string][]int
}

// member returns the first connection of group g.
func (d *dataset) member(g string) router.Connection { return d.conns[d.byGrp[g][0]] }

// newConnID returns an id shaped like API Gateway's: 15 letters and digits
// and "=".
func apigwConnID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [16]byte
	rand.Read(b[:15])
	for i := range 15 {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	b[15] = '='
	return string(b[:])
}

const benchGateway = "https://bench.execute-api.us-east-1.amazonaws.com/prod"

// connections makes n identified connections in groups: sizes gives the
// first groups' sizes; the rest go to team-NNN groups of about perTeam.
// Their ages spread evenly over 2 hours, as in a steady state.
func workConnections(n int, sizes map[string]int, perTeam int) *dataset {
	now := time.Now().UTC().Truncate(time.Millisecond)
	d := &dataset{byGrp: map[string][]int{}}
	var groups []string
	for _, g := range sortedKeys(sizes) {
		for range sizes[g] {
			groups = append(groups, g)
		}
	}
	for i, named := len(groups), len(groups); i < n; i++ {
		groups = append(groups, fmt.Sprintf("team-%03d", (i-named)/perTeam))
	}
	for i := range n {
		at := now.Add(-time.Duration(i) * 2 * time.Hour / time.Duration(n))
		c := router.Connection{
			ID: apigwConnID(), Gateway: benchGateway, ConnectedAt: at, ExpiresAt: at.Add(router.DefaultItemTTL),
			SourceIP: "198.51.100.7", UserAgent: "mastersocket-client/1.0",
			Identity: &router.Identity{ServiceID: uuid.NewString(), Group: groups[i], IdentifiedAt: at.Add(time.Second)},
		}
		d.conns = append(d.conns, c)
		d.byGrp[groups[i]] = append(d.byGrp[groups[i]], i)
	}
	return d
}

// once returns the dataset name, made by build the first time.
func (w *work) once(b *testing.B, name string, build func() *dataset) *dataset {
	v, _ := w.sets.LoadOrStore(name, &onceSet{})
	o := v.(*onceSet)
	o.Do(func() {
		start := time.Now()
		o.d = build()
		b.Logf("%s: %d, made in %v", name, len(o.d.conns), time.Since(start).Round(time.Millisecond))
	})
	if o.d == nil {
		b.Fatalf("table %s could not be made", name)
	}
	return o.d
}

type onceSet struct {
	sync.Once
	d *dataset
}

// newTable creates a table like template.yaml's, deleted when the
// benchmark ends.
func (w *work) newTable(b *testing.B) string {
	name := fmt.Sprintf("mst-work-%d-%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := dynamostore.EnsureTable(ctx, w.db, name); err != nil {
		b.Fatalf("create table: %v", err)
	}
	w.mu.Lock()
	w.cleanups = append(w.cleanups, func() {
		w.db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	w.mu.Unlock()
	return name
}

// ours writes a dataset into a fresh table of the store's, in its own
// layout, with a token for IDENTIFY.
func (w *work) ours(b *testing.B, d *dataset) *dataset {
	d.table = w.newTable(b)
	s, err := dynamostore.New(w.db, dynamostore.Config{Table: d.table})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.BulkLoad(context.Background(), d.conns); err != nil {
		b.Fatal(err)
	}
	putToken(b, s)
	return d
}

// mixedSet is the connections of the mixed table, the same for both designs.
func (w *work) mixedSet(b *testing.B) *dataset {
	return w.once(b, "mixed connections", func() *dataset {
		return workConnections(mixedSize, map[string]int{"group-10": 10, "group-1000": 1000}, 101)
	})
}

func (w *work) wholeSet(b *testing.B) *dataset {
	return w.once(b, "whole connections", func() *dataset { return workConnections(1000, map[string]int{"group-1000": 1000}, 1) })
}

func (w *work) globalSet(b *testing.B, n int) *dataset {
	return w.once(b, fmt.Sprintf("%d connections", n), func() *dataset { return workConnections(n, nil, 1000) })
}

func (w *work) mixed(b *testing.B) *dataset {
	return w.once(b, "ours mixed", func() *dataset { return w.ours(b, cloneSet(w.mixedSet(b))) })
}

func (w *work) whole(b *testing.B) *dataset {
	return w.once(b, "ours whole", func() *dataset { return w.ours(b, cloneSet(w.wholeSet(b))) })
}

func (w *work) global(b *testing.B, n int) *dataset {
	return w.once(b, fmt.Sprintf("ours %d", n), func() *dataset { return w.ours(b, cloneSet(w.globalSet(b, n))) })
}

func cloneSet(d *dataset) *dataset {
	c := *d
	return &c
}

// scanTable writes a dataset into a fresh table of the scan design's,
// keyed by connectionId, each item with the attributes attrs names.
func (w *work) scanTable(b *testing.B, d *dataset, attrs ...string) *dataset {
	d = cloneSet(d)
	d.table = w.newKeyTable(b, "connectionId")
	items := make([]map[string]types.AttributeValue, len(d.conns))
	for i, c := range d.conns {
		items[i] = scanItem(c, attrs...)
	}
	if err := batchPutAll(context.Background(), w.db, d.table, items); err != nil {
		b.Fatal(err)
	}
	return d
}

func scanItem(c router.Connection, attrs ...string) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{"connectionId": &types.AttributeValueMemberS{Value: c.ID}}
	for _, a := range attrs {
		switch a {
		case "serviceId":
			item[a] = &types.AttributeValueMemberS{Value: c.Identity.ServiceID}
		case "group":
			item[a] = &types.AttributeValueMemberS{Value: c.Identity.Group}
		}
	}
	return item
}

func (w *work) scanMixedGroups(b *testing.B) *dataset {
	return w.once(b, "scan mixed groups", func() *dataset { return w.scanTable(b, w.mixedSet(b), "group") })
}

func (w *work) scanMixedDirect(b *testing.B) *dataset {
	return w.once(b, "scan mixed direct", func() *dataset { return w.scanTable(b, w.mixedSet(b), "serviceId", "group") })
}

func (w *work) scanWhole(b *testing.B) *dataset {
	return w.once(b, "scan whole", func() *dataset { return w.scanTable(b, w.wholeSet(b), "group") })
}

func (w *work) scanChat(b *testing.B, n int) *dataset {
	return w.once(b, fmt.Sprintf("scan chat %d", n), func() *dataset {
		switch n {
		case mixedSize:
			return w.scanTable(b, w.mixedSet(b))
		case 1000:
			return w.scanTable(b, w.wholeSet(b))
		}
		return w.scanTable(b, w.globalSet(b, n))
	})
}

// putAll writes items with BatchWriteItem, 25 a call, 8 calls in flight.
func batchPutAll(ctx context.Context, db *dynamodb.Client, table string, items []map[string]types.AttributeValue) error {
	batches := make(chan []types.WriteRequest)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reqs := range batches {
				pending := map[string][]types.WriteRequest{table: reqs}
				for len(pending) > 0 {
					out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
					if err != nil {
						failed.Store(err)
						break
					}
					pending = out.UnprocessedItems
				}
			}
		}()
	}
	for i := 0; i < len(items); i += 25 {
		var reqs []types.WriteRequest
		for _, it := range items[i:min(i+25, len(items))] {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		}
		batches <- reqs
	}
	close(batches)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return err
	}
	return nil
}

// --- ours --------------------------------------------------------------

// workSender stands in for the @connections API: every post succeeds
// at once, and is counted.
type workSender struct{ m *meter }

func (s workSender) Send(context.Context, string, []byte) error {
	s.m.posted()
	return nil
}
func (workSender) Close(context.Context, string) error { return nil }
func (workSender) Status(context.Context, string) (sweep.Status, error) {
	return sweep.Status{}, nil
}

// container returns a fresh Lambda container of ours on table, metered by
// m: new handlers, empty caches.
func workContainer(b *testing.B, m *meter, table string) *handler.Handlers {
	b.Helper()
	s, err := dynamostore.New(m, dynamostore.Config{Table: table})
	if err != nil {
		b.Fatal(err)
	}
	h, err := handler.New(handler.Backend{
		Store:     s,
		NewSender: func(string) (handler.Sender, error) { return workSender{m}, nil },
		Settings:  handler.Settings{ManagementEndpoint: benchGateway},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// as is a client of h on connection c.
func workClient(b *testing.B, h *handler.Handlers, c router.Connection) *client {
	return &client{t: b, h: h, id: c.ID, at: c.ConnectedAt}
}

func workEvent(intent string) string {
	return `{"op":0,"event":"E","data":{"n":1},"intent":` + intent + `}`
}

// oursIdentify measures an IDENTIFY by a warm container: one that has
// joined the buckets of the current window before. The first IDENTIFY of a
// cold container, which may find full buckets on its way (one write unit
// each), is logged apart, and so are the $connect and $disconnect around
// each IDENTIFY.
func oursIdentify(b *testing.B, w *work) {
	d := w.mixed(b)
	m := newMeter(w)
	var h *handler.Handlers
	identify := func(connect, ident, disconnect *tally) {
		c := &client{t: b, h: h, id: apigwConnID(), at: time.Now().UTC().Truncate(time.Millisecond)}
		m.start(connect)
		if resp, err := invoke(b, h.Connect, c.event("connect", "")); err != nil || resp.StatusCode != 200 {
			b.Fatalf("$connect: %+v, %v", resp, err)
		}
		m.start(ident)
		c.identify("late")
		m.start(disconnect) // which leaves the table as it was, for the other cases
		if resp, err := invoke(b, h.Disconnect, c.event("disconnect", "")); err != nil || resp.StatusCode != 200 {
			b.Fatalf("$disconnect: %+v, %v", resp, err)
		}
		m.stop()
	}
	h = workContainer(b, m, d.table)
	cold := newTally()
	identify(newTally(), cold, newTally())
	cold.log(b, "ours", "IDENTIFY by a cold container", 1)
	h = workContainer(b, m, d.table)
	identify(nil, nil, nil) // warm the container, unmetered
	connects, idents, disconnects := newTally(), newTally(), newTally()
	for range b.N {
		identify(connects, idents, disconnects)
	}
	idents.report(b, "ours")
	connects.log(b, "ours", "$connect", b.N)
	disconnects.log(b, "ours", "$disconnect", b.N)
}

func oursDirect(b *testing.B, w *work, cold bool) {
	d := w.mixed(b)
	from, to := d.member("team-001"), d.member("team-002")
	body := workEvent(`{"target":"DIRECT","identifier":"` + to.Identity.ServiceID + `"}`)
	m := newMeter(w)
	h := workContainer(b, m, d.table)
	if !cold {
		workClient(b, h, from).send(body) // the container learns the sender and the target
	}
	t := newTally()
	for range b.N {
		if cold {
			h = workContainer(b, m, d.table)
		}
		m.start(t)
		workClient(b, h, from).send(body)
		m.stop()
	}
	if t.recipients != int64(b.N) {
		b.Fatalf("%d deliveries for %d DIRECT messages", t.recipients, b.N)
	}
	t.report(b, "ours")
}

// oursFanOut measures a GROUP (group != "") or GLOBAL message from a
// member, by a warm container.
func oursFanOut(b *testing.B, w *work, d *dataset, group string) {
	intent := `{"target":"GLOBAL"}`
	from := d.conns[0]
	want := len(d.conns) - 1
	if group != "" {
		intent = `{"target":"GROUP","identifier":"` + group + `"}`
		from = d.member(group)
		want = len(d.byGrp[group]) - 1
	}
	m := newMeter(w)
	h := workContainer(b, m, d.table)
	workClient(b, h, from).send(workEvent(intent)) // the container learns the sender
	t := newTally()
	for range b.N {
		m.start(t)
		workClient(b, h, from).send(workEvent(intent))
		m.stop()
	}
	if got := t.recipients / int64(b.N); got != int64(want) {
		b.Fatalf("%d recipients a message, want %d", got, want)
	}
	t.report(b, "ours")
}

// --- scan --------------------------------------------------------------

// scanBus is the chat sample's design, extended to DIRECT and GROUP:
// connections in a table keyed by connectionId, every message Scans it.
type scanBus struct {
	m      *meter
	table  string
	tokens string
	warm   map[string]router.Identity // sender identities, cached
	snd    workSender
}

func (w *work) scanTokens(b *testing.B) string {
	d := w.once(b, "scan tokens", func() *dataset {
		table := w.newKeyTable(b, "tokenHash")
		item := map[string]types.AttributeValue{
			"tokenHash": &types.AttributeValueMemberS{Value: token.HashOf(testToken).String()},
			"allGroups": &types.AttributeValueMemberBOOL{Value: true},
		}
		if _, err := w.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			b.Fatal(err)
		}
		return &dataset{table: table}
	})
	return d.table
}

func newScanBus(b *testing.B, w *work, m *meter, table string) *scanBus {
	return &scanBus{m: m, table: table, tokens: w.scanTokens(b), warm: map[string]router.Identity{}, snd: workSender{m}}
}

// connect is the chat sample's $connect: one PutItem.
func (s *scanBus) connect(ctx context.Context, connID string) error {
	_, err := s.m.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: map[string]types.AttributeValue{
		"connectionId": &types.AttributeValueMemberS{Value: connID},
	}})
	return err
}

// disconnect is the chat sample's $disconnect: one DeleteItem.
func (s *scanBus) disconnect(ctx context.Context, connID string) error {
	_, err := s.m.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: map[string]types.AttributeValue{
		"connectionId": &types.AttributeValueMemberS{Value: connID},
	}})
	return err
}

// identify checks the token (a strongly consistent GetItem, as ours: a
// revoked token stops working at once) and sets the connection's service id
// and group (one UpdateItem).
func (s *scanBus) identify(ctx context.Context, connID, tok, group string) error {
	out, err := s.m.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.tokens), Key: map[string]types.AttributeValue{
		"tokenHash": &types.AttributeValueMemberS{Value: token.HashOf(tok).String()},
	}, ConsistentRead: aws.Bool(true)})
	if err != nil || len(out.Item) == 0 {
		return fmt.Errorf("token: %v", err)
	}
	id := router.Identity{ServiceID: uuid.NewString(), Group: group}
	_, err = s.m.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      map[string]types.AttributeValue{"connectionId": &types.AttributeValueMemberS{Value: connID}},
		UpdateExpression:         aws.String("SET serviceId = :s, #g = :g"),
		ExpressionAttributeNames: map[string]string{"#g": "group"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":s": &types.AttributeValueMemberS{Value: id.ServiceID}, ":g": &types.AttributeValueMemberS{Value: group},
		},
	})
	if err == nil {
		s.warm[connID] = id
	}
	return err
}

// sender returns the identity of a message's sender: cached, or one
// eventually consistent GetItem.
func (s *scanBus) sender(ctx context.Context, connID string) error {
	if _, ok := s.warm[connID]; ok {
		return nil
	}
	out, err := s.m.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: map[string]types.AttributeValue{
		"connectionId": &types.AttributeValueMemberS{Value: connID},
	}})
	if err != nil {
		return err
	}
	s.warm[connID] = router.Identity{ServiceID: attrString(out.Item["serviceId"]), Group: attrString(out.Item["group"])}
	return nil
}

func attrString(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// route Scans the whole table (with filter, if any), eventually consistent,
// projecting connectionId, and posts to every connection it returns but the
// sender.
func (s *scanBus) route(ctx context.Context, from, filter, attr, value string) error {
	if err := s.sender(ctx, from); err != nil {
		return err
	}
	in := &dynamodb.ScanInput{TableName: aws.String(s.table), ProjectionExpression: aws.String("connectionId")}
	if filter != "" {
		in.FilterExpression = aws.String(filter)
		in.ExpressionAttributeNames = map[string]string{"#a": attr}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberS{Value: value}}
	}
	for {
		out, err := s.m.Scan(ctx, in)
		if err != nil {
			return err
		}
		for _, item := range out.Items {
			if id := attrString(item["connectionId"]); id != from {
				s.snd.Send(ctx, id, nil)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func scanIdentify(b *testing.B, w *work) {
	d := w.scanMixedDirect(b)
	m := newMeter(w)
	s := newScanBus(b, w, m, d.table)
	ctx := context.Background()
	connects, idents, disconnects := newTally(), newTally(), newTally()
	for range b.N {
		id := apigwConnID()
		m.start(connects)
		if err := s.connect(ctx, id); err != nil {
			b.Fatal(err)
		}
		m.start(idents)
		if err := s.identify(ctx, id, testToken, "late"); err != nil {
			b.Fatal(err)
		}
		m.start(disconnects)
		if err := s.disconnect(ctx, id); err != nil {
			b.Fatal(err)
		}
		m.stop()
	}
	idents.report(b, "scan")
	connects.log(b, "scan", "$connect", b.N)
	disconnects.log(b, "scan", "$disconnect", b.N)
}

func scanDirect(b *testing.B, w *work, cold bool) {
	d := w.scanMixedDirect(b)
	from, to := d.member("team-001"), d.member("team-002")
	m := newMeter(w)
	s := newScanBus(b, w, m, d.table)
	ctx := context.Background()
	if !cold {
		s.sender(ctx, from.ID)
	}
	t := newTally()
	for range b.N {
		if cold {
			s = newScanBus(b, w, m, d.table)
		}
		m.start(t)
		if err := s.route(ctx, from.ID, "#a = :v", "serviceId", to.Identity.ServiceID); err != nil {
			b.Fatal(err)
		}
		m.stop()
	}
	if t.recipients != int64(b.N) {
		b.Fatalf("%d deliveries for %d DIRECT messages", t.recipients, b.N)
	}
	t.report(b, "scan")
}

func scanFanOut(b *testing.B, w *work, d *dataset, group string) {
	from := d.conns[0]
	want := len(d.conns) - 1
	filter := ""
	if group != "" {
		from = d.member(group)
		want = len(d.byGrp[group]) - 1
		filter = "#a = :v"
	}
	m := newMeter(w)
	s := newScanBus(b, w, m, d.table)
	s.warm[from.ID] = *from.Identity
	ctx := context.Background()
	t := newTally()
	for range b.N {
		m.start(t)
		if err := s.route(ctx, from.ID, filter, "group", group); err != nil {
			b.Fatal(err)
		}
		m.stop()
	}
	if got := t.recipients / int64(b.N); got != int64(want) {
		b.Fatalf("%d recipients a message, want %d", got, want)
	}
	t.report(b, "scan")
}
