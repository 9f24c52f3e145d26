package localrun_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
	"github.com/mastersocket/mastersocket/internal/protocol"
)

// A GROUP bigger than InlineFanOutMax is delivered partly by the message
// function and partly by asynchronous invocations of FanOutFunction
// through the local Lambda Invoke API, through a management API that
// answers late and throttles: every member receives the message once.
func TestABigFanOutGoesThroughTheFanOutFunction(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			o := m.opts(t)
			o.Parameters = map[string]string{"InlineFanOutMax": "5", "FanOutPostRate": "300"}
			o.Environment = map[string]string{"FANOUT_BATCH_SIZE": "7"}
			o.Gateway.ManagementThrottle = &gateway.Throttle{Rate: 400, Burst: 20, Latency: 5 * time.Millisecond}
			s := startLocal(t, o)

			from := connectSvc(t, s, "sender")
			from.identify("crowd")
			members := make([]*svc, 40)
			for i := range members {
				members[i] = connectSvc(t, s, fmt.Sprintf("m%02d", i))
				members[i].identify("crowd")
			}
			from.send(`{"op":0,"id":"big","event":"BIG","ack":true,"data":"<&>","intent":{"target":"GROUP","identifier":"crowd"}}`)
			f := from.next()
			var r protocol.Receipt
			if f.Op != protocol.OpReceipt || json.Unmarshal(f.Data, &r) != nil {
				t.Fatalf("got %+v, want the receipt", f)
			}
			if want := (protocol.Receipt{Delivered: 5, Queued: 35}); r != want {
				t.Errorf("receipt: got %+v, want %+v", r, want)
			}
			for _, v := range members {
				got := v.expectEvent("BIG", from)
				if string(got.Data) != `"<&>"` {
					t.Errorf("%s: data %s, want \"<&>\" as sent", v.name, got.Data)
				}
			}
			for _, v := range members {
				v.nothing(50 * time.Millisecond) // no second copy
			}
			st := s.Lambda().Stats()
			if st.Accepted != 5 || st.Discarded != 0 || st.Succeeded != 5 {
				t.Errorf("Lambda API: got %+v, want 5 batches of 7 accepted and succeeded", st)
			}
		})
	}
}

// A batch the fan-out function refuses is not retried (MaximumRetryAttempts
// 0) and lands in the on-failure destination with its payload.
func TestAFailedBatchLandsInTheOnFailureDestination(t *testing.T) {
	s := startLocal(t, localrun.Options{})
	client := lambda.New(lambda.Options{
		Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, BaseEndpoint: aws.String("http://" + s.Addr()),
	})
	payload := `{"gateway":"https://elsewhere.example/prod","frame":{"op":0},"to":["c1"],"attempt":1}`
	out, err := client.Invoke(t.Context(), &lambda.InvokeInput{
		FunctionName: aws.String("mastersocket-local-fanout"), InvocationType: types.InvocationTypeEvent, Payload: []byte(payload),
	})
	if err != nil || out.StatusCode != 202 {
		t.Fatalf("Invoke: %v, status %d; want 202", err, out.StatusCode)
	}
	eventually(t, func() bool { return s.Lambda().Stats().Discarded == 1 })
	recs := s.Lambda().Failures()
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	rec := recs[0]
	if rec.RequestContext.Condition != "RetriesExhausted" || rec.RequestContext.ApproximateInvokeCount != 1 ||
		rec.Destination != "arn:aws:sqs:us-east-1:000000000000:FanOutFailures" || string(rec.RequestPayload) != payload ||
		!strings.Contains(string(rec.ResponsePayload), "this router serves") {
		t.Errorf("got record %+v (response %s), want RetriesExhausted after 1 invocation, to FanOutFailures, with the payload", rec, rec.ResponsePayload)
	}

	// Lambda's limit on an asynchronous payload: 1 MB.
	big := `{"x":"` + strings.Repeat("a", 1<<20) + `"}`
	_, err = client.Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String("FanOutFunction"), InvocationType: types.InvocationTypeEvent, Payload: []byte(big),
	})
	var tooLarge *types.RequestTooLargeException
	if !errors.As(err, &tooLarge) {
		t.Errorf("a payload over 1 MB: got %v, want RequestTooLargeException", err)
	}
}
