package lambdaapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/mastersocket/mastersocket/internal/emulator/lambdaapi"
)

// fakeFunctions fails the first failures invocations of each function,
// then answers {"ok":true}; "slow" sleeps past its timeout.
type fakeFunctions struct {
	mu       sync.Mutex
	calls    map[string]int
	failures int
}

func (f *fakeFunctions) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	f.mu.Lock()
	f.calls[function]++
	n := f.calls[function]
	f.mu.Unlock()
	if function == "slow" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if n <= f.failures {
		return nil, errors.New("boom")
	}
	return []byte(`{"ok":true,"got":` + string(payload) + `}`), nil
}

func (f *fakeFunctions) count(fn string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[fn]
}

func newAPI(t *testing.T, failures int, fns ...lambdaapi.Function) (*lambdaapi.API, *fakeFunctions, *lambda.Client) {
	t.Helper()
	inv := &fakeFunctions{calls: map[string]int{}, failures: failures}
	api, err := lambdaapi.New(lambdaapi.Config{
		Functions: fns, Invoker: inv, RetryDelays: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(func() { srv.Close(); api.Close() })
	client := lambda.New(lambda.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, BaseEndpoint: aws.String(srv.URL),
		RetryMaxAttempts: 1})
	return api, inv, client
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAnAsynchronousInvocationIsAcceptedThenRun(t *testing.T) {
	api, inv, client := newAPI(t, 0, lambdaapi.Function{Name: "Fan", Aliases: []string{"stack-fan"}})
	for _, name := range []string{"Fan", "stack-fan", "arn:aws:lambda:us-east-1:000000000000:function:stack-fan", "000000000000:function:Fan:$LATEST"} {
		out, err := client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String(name), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"n":1}`)})
		if err != nil || out.StatusCode != http.StatusAccepted || len(out.Payload) != 0 {
			t.Fatalf("%s: got %v, %+v; want 202 and no payload", name, err, out)
		}
	}
	waitFor(t, func() bool { return api.Stats().Succeeded == 4 })
	if n := inv.count("Fan"); n != 4 {
		t.Errorf("ran %d times, want 4", n)
	}
}

func TestASynchronousInvocationReturnsTheResponseOrTheFunctionError(t *testing.T) {
	_, _, client := newAPI(t, 1, lambdaapi.Function{Name: "F"}, lambdaapi.Function{Name: "slow", Timeout: 50 * time.Millisecond})
	out, err := client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String("F"), Payload: []byte(`{}`)})
	if err != nil || aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), `"errorMessage":"boom"`) {
		t.Errorf("failing: got %v, %+v %s; want FunctionError Unhandled with the error document", err, out, out.Payload)
	}
	out, err = client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String("F"), Payload: []byte(`{"a":1}`)})
	if err != nil || out.StatusCode != 200 || out.FunctionError != nil || string(out.Payload) != `{"ok":true,"got":{"a":1}}` {
		t.Errorf("succeeding: got %v, %+v %s", err, out, out.Payload)
	}
	out, err = client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String("slow"), Payload: []byte(`{}`)})
	if err != nil || !strings.Contains(string(out.Payload), "Task timed out after 0.05 seconds") {
		t.Errorf("timing out: got %v, %s", err, out.Payload)
	}
	out, err = client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String("F"), InvocationType: types.InvocationTypeDryRun})
	if err != nil || out.StatusCode != http.StatusNoContent {
		t.Errorf("dry run: got %v, %+v; want 204", err, out)
	}
}

func TestRequestsLambdaRefuses(t *testing.T) {
	_, _, client := newAPI(t, 0, lambdaapi.Function{Name: "F"})
	tests := []struct {
		name string
		in   *lambda.InvokeInput
		want any
	}{
		{"unknown function", &lambda.InvokeInput{FunctionName: aws.String("nope"), InvocationType: types.InvocationTypeEvent}, new(*types.ResourceNotFoundException)},
		{"async payload over 1 MB", &lambda.InvokeInput{FunctionName: aws.String("F"), InvocationType: types.InvocationTypeEvent,
			Payload: []byte(`"` + strings.Repeat("a", lambdaapi.MaxAsyncPayload) + `"`)}, new(*types.RequestTooLargeException)},
		{"payload not JSON", &lambda.InvokeInput{FunctionName: aws.String("F"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{`)},
			new(*types.InvalidRequestContentException)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Invoke(t.Context(), tc.in)
			if err == nil || !errors.As(err, tc.want) {
				t.Errorf("got %v, want %T", err, tc.want)
			}
		})
	}
	// 1 MB exactly is accepted.
	ok := []byte(`"` + strings.Repeat("a", lambdaapi.MaxAsyncPayload-2) + `"`)
	if _, err := client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String("F"), InvocationType: types.InvocationTypeEvent, Payload: ok}); err != nil {
		t.Errorf("a payload of exactly 1 MB: %v", err)
	}
}

func TestAFailingEventIsRetriedThenSentToItsDestination(t *testing.T) {
	zero := 0
	api, inv, client := newAPI(t, 100,
		lambdaapi.Function{Name: "Default", Async: lambdaapi.Async{OnFailure: "arn:aws:sqs:us-east-1:000000000000:dlq"}},
		lambdaapi.Function{Name: "NoRetry", Async: lambdaapi.Async{MaxRetries: &zero}})
	for _, fn := range []string{"Default", "NoRetry"} {
		if _, err := client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String(fn), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"k":"v"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return api.Stats().Discarded == 2 })
	if got := inv.count("Default"); got != 3 {
		t.Errorf("Default ran %d times, want 3 (Lambda's two retries)", got)
	}
	if got := inv.count("NoRetry"); got != 1 {
		t.Errorf("NoRetry ran %d times, want 1 (MaximumRetryAttempts 0)", got)
	}
	byFn := map[string]lambdaapi.Record{}
	for _, r := range api.Failures() {
		byFn[r.RequestContext.FunctionARN] = r
	}
	d := byFn["arn:aws:lambda:us-east-1:000000000000:function:Default:$LATEST"]
	if d.RequestContext.ApproximateInvokeCount != 3 || d.RequestContext.Condition != "RetriesExhausted" || d.Destination != "arn:aws:sqs:us-east-1:000000000000:dlq" ||
		string(d.RequestPayload) != `{"k":"v"}` || d.ResponseContext.FunctionError != "Unhandled" {
		t.Errorf("Default's record: got %+v", d)
	}
	if st := api.Stats(); st.Retries != 2 || st.Invocations != 4 || st.Pending != 0 {
		t.Errorf("stats: got %+v, want 2 retries of 4 invocations, none pending", st)
	}
}

func TestAnEventOlderThanItsMaximumAgeIsDiscarded(t *testing.T) {
	api, inv, client := newAPI(t, 100, lambdaapi.Function{Name: "F", Async: lambdaapi.Async{MaxEventAge: 15 * time.Millisecond}})
	if _, err := client.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String("F"), InvocationType: types.InvocationTypeEvent}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return api.Stats().Discarded == 1 })
	if rec := api.Failures()[0]; rec.RequestContext.Condition != "EventAgeExceeded" {
		t.Errorf("got condition %q, want EventAgeExceeded", rec.RequestContext.Condition)
	}
	if n := inv.count("F"); n != 2 {
		t.Errorf("ran %d times, want 2 (the second retry comes after the event's maximum age)", n)
	}
}
