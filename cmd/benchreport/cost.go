package main

import (
	"fmt"
	"math"
)

// Model holds the assumptions of the cost model; the flags set them.
type Model struct {
	// MessageBytes is the size of a message; API Gateway meters messages
	// in 32 KB increments.
	MessageBytes int
	// DeliveriesPerConnMinute is how many deliveries a connection receives
	// per minute it is connected: the connection minutes a delivery
	// carries are 1/DeliveriesPerConnMinute.
	DeliveriesPerConnMinute float64
	// MemoryMB is the functions' memory (template.yaml: 256), which turns
	// the baseline's duration into GB-seconds.
	MemoryMB int
}

// apiGatewayIncrement is the size API Gateway meters WebSocket messages by.
const apiGatewayIncrement = 32 << 10

// Usage is what one message uses of each priced thing.
type Usage struct {
	Deliveries  float64 // recipients reached
	RRU, WRU    float64 // DynamoDB request units
	Invocations float64 // Lambda requests
	GBSeconds   float64 // Lambda duration × memory
}

// Cost is what one message costs, in dollars, by service.
type Cost struct {
	DynamoDB    float64
	Lambda      float64
	Messages    float64 // API Gateway messages: the inbound one and each delivery
	ConnMinutes float64 // API Gateway connection minutes, per the model's assumption
	Deliveries  float64
}

// Total returns the cost of the message.
func (c Cost) Total() float64 { return c.DynamoDB + c.Lambda + c.Messages + c.ConnMinutes }

// Floor returns the part no design avoids: API Gateway's messages and
// connection minutes.
func (c Cost) Floor() float64 { return c.Messages + c.ConnMinutes }

// PerMillion returns x, a cost per message, per million deliveries; 0 when
// the message reaches no one.
func (c Cost) PerMillion(x float64) float64 {
	if c.Deliveries <= 0 {
		return 0
	}
	return x / c.Deliveries * 1e6
}

// Cost prices u under the model's assumptions.
func (m Model) Cost(u Usage) Cost {
	increments := math.Max(1, math.Ceil(float64(m.MessageBytes)/apiGatewayIncrement))
	perConnMinute := m.DeliveriesPerConnMinute
	if perConnMinute <= 0 {
		perConnMinute = 1
	}
	return Cost{
		DynamoDB:    u.RRU*price("dynamodb-rru").PerUnit() + u.WRU*price("dynamodb-wru").PerUnit(),
		Lambda:      u.Invocations*price("lambda-request").PerUnit() + u.GBSeconds*price("lambda-gb-second").PerUnit(),
		Messages:    (1 + u.Deliveries) * increments * price("apigw-message").PerUnit(),
		ConnMinutes: u.Deliveries / perConnMinute * price("apigw-connection-minute").PerUnit(),
		Deliveries:  u.Deliveries,
	}
}

// fanOutCounts are the recipient counts BenchmarkFanOutTime measures.
var fanOutCounts = []int{1000, 10000, 100000}

// nearestFanOut returns the measured BenchmarkFanOutTime of mode whose
// recipient count is nearest (on a log scale) to want.
func nearestFanOut(run *Run, mode string, want float64) (*Result, int) {
	var best *Result
	bestN, bestD := 0, math.Inf(1)
	for _, n := range fanOutCounts {
		r := run.Results[fanOutName(mode, n)]
		if r == nil {
			continue
		}
		if _, ok := r.Metric("s/msg"); !ok {
			continue
		}
		d := math.Abs(math.Log(float64(n)) - math.Log(math.Max(want, 1)))
		if d < bestD {
			best, bestN, bestD = r, n, d
		}
	}
	return best, bestN
}

// dynamoUsage reads the DynamoDB work of a GLOBAL message on a table of
// conns connections, for design "ours" or "scan".
func dynamoUsage(run *Run, design string, conns int) (Usage, bool) {
	r := run.Results[dynamoName(design, fmt.Sprintf("GLOBAL-%d", conns))]
	rcu, ok1 := r.Metric("RCU/msg")
	wcu, ok2 := r.Metric("WCU/msg")
	if !ok1 && !ok2 {
		return Usage{}, false
	}
	u := Usage{RRU: rcu, WRU: wcu, Deliveries: float64(conns)}
	if d, ok := r.Metric("recipients/msg"); ok && d > 0 {
		u.Deliveries = d
	}
	return u, true
}

// scaleNote says where a Lambda figure came from.
func scaleNote(n int, deliveries float64) string {
	if math.Abs(float64(n)-deliveries) <= 0.01*float64(n)+1 {
		return fmt.Sprintf("recipients=%d", n)
	}
	return fmt.Sprintf("scaled from recipients=%d", n)
}

// oursUsage returns what a GLOBAL message to a table of conns connections
// costs our design in fan-out mode mode: DynamoDB from
// BenchmarkDynamoDBWork/ours/GLOBAL-conns, Lambda from
// BenchmarkFanOutTime/mode at the nearest recipient count, scaled
// linearly to the deliveries (at least one invocation). missing names
// what was not measured.
func oursUsage(run *Run, mode string, conns int) (u Usage, note, missing string) {
	u, ok := dynamoUsage(run, "ours", conns)
	if !ok {
		return u, "", dynamoName("ours", fmt.Sprintf("GLOBAL-%d", conns))
	}
	r, n := nearestFanOut(run, mode, u.Deliveries)
	if r == nil {
		return u, "", "BenchmarkFanOutTime/" + mode
	}
	scale := u.Deliveries / float64(n)
	inv, _ := r.Metric("invocations/msg")
	gbs, _ := r.Metric("GB-s/msg")
	u.Invocations = math.Max(1, inv*scale)
	u.GBSeconds = gbs * scale
	return u, "Lambda " + scaleNote(n, u.Deliveries), ""
}

// scanUsage returns what the same message costs the baseline: DynamoDB
// from BenchmarkDynamoDBWork/scan/GLOBAL-conns, and one invocation that
// lasts as long as its posts take one after another, at the per-post time
// of BenchmarkFanOutTime/sequential (the Scan's own time not counted).
func (m Model) scanUsage(run *Run, conns int) (u Usage, note, missing string) {
	u, ok := dynamoUsage(run, "scan", conns)
	if !ok {
		return u, "", dynamoName("scan", fmt.Sprintf("GLOBAL-%d", conns))
	}
	r, n := nearestFanOut(run, "sequential", u.Deliveries)
	if r == nil {
		return u, "", "BenchmarkFanOutTime/sequential"
	}
	secs, _ := r.Metric("s/msg")
	posts, ok := r.Metric("posts/msg")
	if !ok || posts <= 0 {
		posts = float64(n)
	}
	perPost := secs / posts
	u.Invocations = 1
	u.GBSeconds = u.Deliveries * perPost * float64(m.MemoryMB) / 1024
	return u, fmt.Sprintf("%s per post from sequential recipients=%d", fmtSeconds(perPost), n), ""
}
