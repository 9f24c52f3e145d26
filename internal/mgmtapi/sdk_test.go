package mgmtapi

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
)

// headerRecorder answers 200 and keeps the headers of the last request.
type headerRecorder struct {
	mu     sync.Mutex
	header http.Header
}

func (r *headerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.header = req.Header.Clone()
	r.mu.Unlock()
	return answer200{}.RoundTrip(req)
}

// A signed call (AWS) keeps every header of the SDK's; an anonymous one (a
// local gateway) goes without those only AWS reads, and still reaches its
// connection with its body.
func TestOnlyUnsignedCallsLeaveOutAWSOnlyHeaders(t *testing.T) {
	awsOnly := []string{"User-Agent", "Amz-Sdk-Invocation-Id"}
	tests := []struct {
		name        string
		awsCfg      aws.Config
		wantAWSOnly bool
	}{
		{"signed", testAWSConfig(), true},
		{"anonymous", aws.Config{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &headerRecorder{}
			s, err := New(tt.awsCfg, Config{Endpoint: "http://127.0.0.1:3001/dev", HTTPClient: &http.Client{Transport: rec}})
			if err != nil {
				t.Fatal(err)
			}
			for _, call := range []struct {
				name string
				do   func() error
			}{
				{"Send", func() error { return s.Send(context.Background(), testConnID, []byte("x")) }},
				{"Close", func() error { return s.Close(context.Background(), testConnID) }},
			} {
				if err := call.do(); err != nil {
					t.Fatalf("%s: got error %v, want nil", call.name, err)
				}
				for _, h := range awsOnly {
					if got := rec.header.Get(h) != ""; got != tt.wantAWSOnly {
						t.Errorf("%s: header %s present: got %v, want %v", call.name, h, got, tt.wantAWSOnly)
					}
				}
				if got := rec.header.Get("Authorization") != ""; got != tt.wantAWSOnly {
					t.Errorf("%s: signed: got %v, want %v", call.name, got, tt.wantAWSOnly)
				}
			}
		})
	}
}

// The endpoint cache resolves once per set of parameters and gives the
// resolver's own answer.
func TestEndpointCacheResolvesOncePerParameters(t *testing.T) {
	c := &endpointCache{next: apigatewaymanagementapi.NewDefaultEndpointResolverV2()}
	params := func(endpoint string) apigatewaymanagementapi.EndpointParameters {
		return apigatewaymanagementapi.EndpointParameters{
			Region: aws.String("eu-west-1"), Endpoint: aws.String(endpoint),
			UseDualStack: aws.Bool(false), UseFIPS: aws.Bool(false),
		}
	}
	for _, endpoint := range []string{"https://a.example/prod", "https://a.example/prod", "http://127.0.0.1:3001/dev", "https://a.example/prod"} {
		got, err := c.ResolveEndpoint(context.Background(), params(endpoint))
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.next.ResolveEndpoint(context.Background(), params(endpoint))
		if err != nil {
			t.Fatal(err)
		}
		if got.URI.String() != want.URI.String() {
			t.Errorf("endpoint %s: got %s, want %s", endpoint, got.URI.String(), want.URI.String())
		}
	}
}
