// Command fn is a test function for package lambdart. It echoes its event
// unless the event asks for something else:
//
//	{"sleep":"2s"}          sleep, then echo
//	{"error":"msg"}         return a NotFoundError
//	{"panic":"msg"}         panic (aws-lambda-go reports it, then exits)
//	{"exit":3}              os.Exit(3)
//	{"print":"line"}        print line to stdout, then echo
//	{"info":true}           return what the function sees (deadline, context, env, pid)
//	{"stream_error":"msg"}  return a response reader that fails part-way
//	{"bogus_post":true}     POST a response for an unknown request id; return the API's answer
//
// TEST_INIT=exit makes it fail at init by exiting; TEST_INIT=post makes it
// report an init error to the Runtime API first, as custom runtimes do;
// TEST_INIT=hang makes it never finish its init.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Sleep       string   `json:"sleep"`
	Error       string   `json:"error"`
	Panic       string   `json:"panic"`
	Exit        *int     `json:"exit"`
	Print       string   `json:"print"`
	Info        bool     `json:"info"`
	Env         []string `json:"env"`
	StreamError string   `json:"stream_error"`
	BogusPost   bool     `json:"bogus_post"`
}

// Info is what {"info":true} returns.
type Info struct {
	RemainingMS int64             `json:"remaining_ms"`
	RequestID   string            `json:"request_id"`
	ARN         string            `json:"arn"`
	TraceID     string            `json:"trace_id"`
	Pid         int               `json:"pid"`
	Cwd         string            `json:"cwd"`
	Env         map[string]string `json:"env"`
}

type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + " not found" }

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func handle(ctx context.Context, raw json.RawMessage) (io.Reader, error) {
	var ev event
	_ = json.Unmarshal(raw, &ev)
	switch {
	case ev.Sleep != "":
		d, err := time.ParseDuration(ev.Sleep)
		if err != nil {
			return nil, err
		}
		time.Sleep(d)
	case ev.Error != "":
		return nil, &NotFoundError{What: ev.Error}
	case ev.Panic != "":
		panic(ev.Panic)
	case ev.Exit != nil:
		os.Exit(*ev.Exit)
	case ev.Print != "":
		fmt.Println(ev.Print)
	case ev.StreamError != "":
		return &failingReader{r: strings.NewReader("partial"), err: errors.New(ev.StreamError)}, nil
	case ev.BogusPost:
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/bogus-id/response"
		resp, err := http.Post(url, "application/json", strings.NewReader(`{}`))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		out, _ := json.Marshal(map[string]any{"status": resp.StatusCode, "body": json.RawMessage(body)})
		return bytes.NewReader(out), nil
	case ev.Info:
		info := Info{Pid: os.Getpid(), Env: map[string]string{}, TraceID: os.Getenv("_X_AMZN_TRACE_ID")}
		if dl, ok := ctx.Deadline(); ok {
			info.RemainingMS = time.Until(dl).Milliseconds()
		}
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			info.RequestID = lc.AwsRequestID
			info.ARN = lc.InvokedFunctionArn
		}
		info.Cwd, _ = os.Getwd()
		for _, k := range ev.Env {
			if v, ok := os.LookupEnv(k); ok {
				info.Env[k] = v
			}
		}
		out, _ := json.Marshal(info)
		return bytes.NewReader(out), nil
	}
	return bytes.NewReader(raw), nil
}

func main() {
	switch os.Getenv("TEST_INIT") {
	case "hang":
		time.Sleep(time.Hour)
	case "exit":
		log.Fatal("init failed: TABLE_NAME is not set")
	case "post":
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		req, _ := http.NewRequest(http.MethodPost, url,
			strings.NewReader(`{"errorMessage":"TABLE_NAME is not set","errorType":"ConfigError"}`))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		log.Fatalf("init error reported: %s", resp.Status)
	}
	lambda.StartWithOptions(handle, lambda.WithEnableSIGTERM(func() {
		fmt.Println("SIGTERM received")
		os.Exit(0)
	}))
}
