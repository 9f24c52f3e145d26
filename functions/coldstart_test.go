package functions_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mastersocket/mastersocket/internal/emulator/lambdart"
	"github.com/mastersocket/mastersocket/internal/emulator/template"
)

// BenchmarkColdStart measures what a cold start of each function of
// functions/ (each folder with a main.go) owes to its binary, against
// testdata/floor, a do-nothing function that links the same AWS SDK
// clients (sub-benchmark "floor"):
//
//   - bootstrap-bytes: the bootstrap as `make build` builds it (linux/arm64,
//     CGO_ENABLED=0, -tags lambda.norpc -trimpath -ldflags="-s -w"), and
//     floor-bytes, the floor's;
//   - ms-to-first-answer: the median time from starting the process to its
//     answer to one invocation, under lambdart's Runtime API, of a bootstrap
//     built the same way for this machine. Each run is a new process given
//     the template's environment for the function, with every AWS endpoint
//     pointing at a stub on 127.0.0.1 that answers at once, and one event
//     of ../testdata (an error the function returns counts as an answer;
//     a process that exits or times out fails the benchmark).
//
// It lives here, beside the functions it builds and TestBootstrapsForLambda
// (which builds them with the same flags), rather than in lambdart: it is a
// measure of the deployment artifacts, and lambdart is only its stopwatch.
// The builds come from Go's build cache after the first run; each run
// builds into a temporary folder of its own.
func BenchmarkColdStart(b *testing.B) {
	fns, err := functionDirs(".")
	if err != nil {
		b.Fatal(err)
	}
	stub := httptest.NewServer(http.HandlerFunc(answerAWS))
	defer stub.Close()
	envs, err := templateEnvs("../template.yaml", stub.URL)
	if err != nil {
		b.Fatal(err)
	}
	bc := &buildCache{dir: b.TempDir(), out: map[string]string{}}
	home := b.TempDir()
	logged := map[string]bool{} // Go runs each sub-benchmark's function more than once
	for _, fn := range append([]string{"floor"}, fns...) {
		b.Run(fn, func(b *testing.B) {
			pkg := "./" + fn
			if fn == "floor" {
				pkg = "./testdata/floor"
			}
			size := fileSize(b, bc.build(b, pkg, "linux", "arm64"))
			floor := fileSize(b, bc.build(b, "./testdata/floor", "linux", "arm64"))
			bin := bc.build(b, pkg, runtime.GOOS, runtime.GOARCH)
			env := append(baseEnv(stub.URL, home), envs[fn]...)
			payload, err := event(fn, stub.URL)
			if err != nil {
				b.Fatal(err)
			}
			times := make([]time.Duration, 0, b.N)
			var answer string
			b.ResetTimer()
			for range b.N {
				took, a := firstAnswer(b, fn, bin, env, payload)
				times = append(times, took)
				answer = a
			}
			b.StopTimer()
			slices.Sort(times)
			if !logged[fn] {
				b.Logf("%s answered %s", fn, answer)
				logged[fn] = true
			}
			b.ReportMetric(float64(size), "bootstrap-bytes")
			b.ReportMetric(float64(floor), "floor-bytes")
			b.ReportMetric(float64(times[len(times)/2])/1e6, "ms-to-first-answer")
		})
	}
}

// firstAnswer starts bin under a pool of its own, invokes it once and
// returns how long the answer took from the start of the process, and the
// answer, shortened.
func firstAnswer(b *testing.B, fn, bin string, env []string, payload []byte) (time.Duration, string) {
	b.Helper()
	var logs bytes.Buffer
	pool, err := lambdart.NewPool(lambdart.Function{
		Name: fn, Path: bin, Env: env, MaxProcs: 1, MemoryMB: 256, Timeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	resp, err := pool.Invoke(context.Background(), payload)
	took := time.Since(start)
	b.StopTimer()
	defer b.StartTimer()
	pool.Close()
	var fe *lambdart.FunctionError
	if err != nil && (!errors.As(err, &fe) || strings.HasPrefix(fe.Type, "Runtime.") || strings.HasPrefix(fe.Type, "Sandbox.")) {
		b.Fatalf("%s gave no answer: %v\n%s", fn, err, logs.String())
	}
	answer := string(resp)
	if err != nil {
		answer = "with the error " + err.Error()
	}
	if len(answer) > 100 {
		answer = answer[:100] + "…"
	}
	return took, answer
}

// functionDirs returns the folders of dir that hold a main.go, sorted.
func functionDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "testdata" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "main.go")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// buildCache builds each package once per GOOS/GOARCH for the whole
// benchmark: Go calls a sub-benchmark's function more than once.
type buildCache struct {
	dir string
	mu  sync.Mutex
	out map[string]string
}

// build builds pkg with the flags of `make build` for goos/goarch and
// returns the bootstrap's path.
func (c *buildCache) build(b *testing.B, pkg, goos, goarch string) string {
	b.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	key := pkg + " " + goos + "/" + goarch
	if out, ok := c.out[key]; ok {
		return out
	}
	out := filepath.Join(c.dir, goos+"-"+goarch, filepath.Base(pkg), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s for %s/%s: %v\n%s", pkg, goos, goarch, err, msg)
	}
	c.out[key] = out
	return out
}

func fileSize(b *testing.B, path string) int64 {
	b.Helper()
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

// answerAWS plays every AWS API the functions call, at once: an empty
// JSON document is a DynamoDB item not found, a Query of nothing, a write
// done; a post to a connection done; an invocation accepted.
func answerAWS(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.Header.Get("X-Amz-Target") != "" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/functions/") {
		w.WriteHeader(http.StatusAccepted) // Lambda's Invoke, asynchronous
	}
	_, _ = io.WriteString(w, "{}")
}

// stage is the stage in the stub's management endpoint.
const stage = "bench"

// baseEnv is the environment every process gets: credentials that sign,
// every AWS endpoint at the stub, no shared configuration files, no IMDS.
func baseEnv(stubURL, home string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL=" + stubURL, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"HOME=" + home,
	}
}

// templateEnvs returns the environment template.yaml gives each function,
// by its folder under functions/: parameters at their defaults, other
// names given values of the right shape, the management endpoint at the
// stub.
func templateEnvs(path, stubURL string) (map[string][]string, error) {
	tmpl, err := template.Load(path)
	if err != nil {
		return nil, err
	}
	params := tmpl.ParameterValues()
	lookup := func(name string) (string, bool) {
		if v, ok := params[name]; ok {
			return v, true
		}
		switch name {
		case "AWS::Region":
			return "us-east-1", true
		case "AWS::AccountId":
			return "123456789012", true
		case "AWS::Partition":
			return "aws", true
		case "AWS::URLSuffix":
			return "amazonaws.com", true
		case "AWS::StackName":
			return "mastersocket-bench", true
		}
		if res, attr, ok := strings.Cut(name, "."); ok && attr == "Arn" {
			return "arn:aws:lambda:us-east-1:123456789012:function:" + res, true
		}
		return strings.ToLower(strings.ReplaceAll(name, ".", "-")), true
	}
	out := map[string][]string{}
	for _, fn := range tmpl.Functions() {
		dir, ok := strings.CutPrefix(strings.Trim(filepath.ToSlash(fn.CodeURI), "/"), "functions/")
		if !ok {
			continue
		}
		var env []string
		for k, v := range fn.Environment {
			val, err := template.Expand(v, lookup)
			if err != nil {
				return nil, fmt.Errorf("%s: environment %s: %w", fn.LogicalID, k, err)
			}
			if k == "MANAGEMENT_ENDPOINT" {
				val = stubURL + "/" + stage
			}
			env = append(env, k+"="+val)
		}
		slices.Sort(env)
		out[dir] = env
	}
	return out, nil
}

// event returns the event fn is invoked with: the API Gateway or
// EventBridge event of ../testdata its route gets, a batch of one
// recipient for the fan-out function, and an empty object for any other.
func event(fn, stubURL string) ([]byte, error) {
	files := map[string]string{
		"connect":    "apigw/connect.json",
		"disconnect": "apigw/disconnect.json",
		"message":    "apigw/message.json",
		"authorizer": "apigw/authorizer.json",
		"sweeper":    "eventbridge/scheduled.json",
	}
	if f, ok := files[fn]; ok {
		return os.ReadFile(filepath.Join("..", "testdata", filepath.FromSlash(f)))
	}
	if fn == "fanout" {
		return fmt.Appendf(nil, `{"gateway":%q,"id":"cold-start","frame":{"op":0,"event":"COLD"},"to":["CdmZ2dMyoAMCJqQ="],"attempt":1}`,
			stubURL+"/"+stage), nil
	}
	return []byte("{}"), nil
}
