package mgmtapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// answer200 is an http.RoundTripper that answers every request 200 at once,
// with no body: the cheapest gateway there can be, so that a benchmark
// through it measures the SDK client and nothing else.
type answer200 struct{}

func (answer200) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		Status:     "200 OK",
		StatusCode: http.StatusOK,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Body:       http.NoBody,
		Request:    req,
	}, nil
}

// BenchmarkPostToConnection measures the SDK's own cost of one Send (one
// PostToConnection of a 200-byte frame through apigatewaymanagementapi's
// middleware stack) against a transport that answers 200 at once: the
// floor of a delivery in process. It runs with anonymous credentials, as
// the local gateway's in-process functions do, and with static ones, which
// adds SigV4 signing as on AWS. calls/s/core is 1e9 / ns/op; run it with
// -cpu 1, so that the garbage collector's share is counted on the same
// core: go test -run '^$' -bench PostToConnection -cpu 1 ./internal/mgmtapi/
func BenchmarkPostToConnection(b *testing.B) {
	frame := bytes.Repeat([]byte("x"), 200)
	for _, tt := range []struct {
		name   string
		awsCfg aws.Config
	}{
		{"anonymous", aws.Config{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}}},
		{"sigv4", testAWSConfig()},
	} {
		b.Run(tt.name, func(b *testing.B) {
			s, err := New(tt.awsCfg, Config{
				Endpoint:   "http://127.0.0.1:3001/dev",
				HTTPClient: &http.Client{Transport: answer200{}},
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := s.Send(ctx, testConnID, frame); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s/core")
		})
	}
}
