package lambdart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build runs `go build -tags lambda.norpc -o out .` in pkgDir for the host
// (GOOS and GOARCH of the running program, CGO_ENABLED=0), so the result runs
// here under a Pool. On failure the error includes the compiler's output.
func Build(ctx context.Context, pkgDir, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("lambdart: build %s: %w", pkgDir, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-o", abs, ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("lambdart: go build in %s: %w\n%s", pkgDir, err, bytes.TrimSpace(output))
	}
	return nil
}
