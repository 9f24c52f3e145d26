// Package scripts_test checks scripts/dynamodb-local.sh as a user runs it:
// it leaves no scratch folder behind and DynamoDB Local listens on the
// loopback interface only. It needs Java and the script's download cache,
// which `make test` provides (the tests are skipped elsewhere, and fail in
// CI when they cannot run).
package scripts_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needJava skips the test without Java and the cached jar (a plain `go
// test`), and fails it in CI.
func needJava(t *testing.T) {
	t.Helper()
	_, errJava := exec.LookPath("java")
	dir := os.Getenv("DYNAMODB_LOCAL_DIR")
	if errJava == nil && dir != "" {
		return
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal("java and DYNAMODB_LOCAL_DIR are needed, and CI=true: run `make test`")
	}
	t.Skip("java and DYNAMODB_LOCAL_DIR (set by `make test`) are needed")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listeners returns the local addresses listening on port, as /proc/net
// shows them (hex address:port).
func listeners(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // LISTEN
				continue
			}
			addr, p, _ := strings.Cut(fields[1], ":")
			if n, _ := strconv.ParseInt(p, 16, 32); int(n) == port {
				out = append(out, addr)
			}
		}
	}
	return out
}

// loopback reports whether a /proc/net address is 127.0.0.1, ::1 or
// ::ffff:127.0.0.1.
func loopback(hexAddr string) bool {
	switch hexAddr {
	case "0100007F", // 127.0.0.1, little-endian
		"00000000000000000000000001000000", // ::1
		"0000000000000000FFFF00000100007F": // ::ffff:127.0.0.1
		return true
	}
	return false
}

func TestServeListensOnLoopbackAndCleansUp(t *testing.T) {
	needJava(t)
	tmp := t.TempDir()
	port := freePort(t)
	cmd := exec.Command("./dynamodb-local.sh", "serve", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	said := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "dynamodb-local: serving") {
				said <- sc.Text()
			}
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for len(listeners(t, port)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("DynamoDB Local never listened")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, a := range listeners(t, port) {
		if !loopback(a) {
			t.Errorf("DynamoDB Local listens on %s, want the loopback interface only", a)
		}
	}
	select {
	case line := <-said:
		if !strings.Contains(line, "listening on 127.0.0.1 only") {
			t.Errorf("the script says %q, want it to say where it listens", line)
		}
	case <-time.After(10 * time.Second):
		t.Error("the script never said where it serves")
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 1 {
		t.Errorf("scratch folders while serving: %v, want one", entries)
	}

	// Stopped (SIGTERM: a test's child may have SIGINT ignored; Ctrl-C in
	// a terminal takes the same path), it stops Java and removes its folder.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("left behind in TMPDIR: %v", entries)
	}
	for start := time.Now(); len(listeners(t, port)) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("DynamoDB Local still listens after the script stopped")
		}
	}
}

func TestRunCleansUp(t *testing.T) {
	needJava(t)
	tmp := t.TempDir()
	cmd := exec.Command("./dynamodb-local.sh", "run", "sh", "-c", `echo "$DYNAMODB_ENDPOINT"`)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.HasPrefix(string(out), "http://127.0.0.1:") {
		t.Errorf("the command saw DYNAMODB_ENDPOINT=%q", out)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("left behind in TMPDIR: %v", entries)
	}
}
