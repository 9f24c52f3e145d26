// Package functions_test checks the Lambda deployment artifacts: each
// function builds for provided.al2023 on arm64 as a static bootstrap, with
// the lambda.norpc tag, under the size budget.
package functions_test

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// maxBootstrapBytes is the size budget of one bootstrap.
const maxBootstrapBytes = 15 << 20

func TestBootstrapsForLambda(t *testing.T) {
	if testing.Short() {
		t.Skip("builds six binaries")
	}
	for _, fn := range []string{"connect", "disconnect", "message", "sweeper", "authorizer", "fanout"} {
		t.Run(fn, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "bootstrap")
			// The flags of `make build`, which SAM's go1.x builder takes from
			// the environment in `make sam-build`.
			cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
			cmd.Dir = fn
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, b)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s/bootstrap: %.1f MB", fn, float64(st.Size())/(1<<20))
			if st.Size() > maxBootstrapBytes {
				t.Errorf("bootstrap is %d bytes, over the budget of %d", st.Size(), maxBootstrapBytes)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != elf.EM_AARCH64 {
				t.Errorf("got machine %v, want arm64", f.Machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("bootstrap is dynamically linked; provided.al2023 wants CGO_ENABLED=0")
				}
			}
			info, err := buildinfo.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			for k, want := range map[string]string{"-tags": "lambda.norpc", "CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "arm64"} {
				if settings[k] != want {
					t.Errorf("build setting %s = %q, want %q", k, settings[k], want)
				}
			}
			if info.Main.Path != "github.com/mastersocket/mastersocket" {
				t.Errorf("main module %q", info.Main.Path)
			}
		})
	}
}
