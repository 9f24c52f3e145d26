//go:build unix

package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// startMakeRun runs `make run` as a user does, in a process group of its
// own (as a terminal's foreground job), and returns it with the WebSocket
// URL it prints.
func startMakeRun(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command("make", "-s", "-C", "../..", "run", "ARGS=--addr 127.0.0.1:0 --token mst_signal-test")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "MAKEFLAGS=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	urlRE := regexp.MustCompile(`ws://127\.0\.0\.1:\d+/dev`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u := urlRE.FindString(sc.Text()); u != "" {
				found <- u
			}
		}
	}()
	select {
	case u := <-found:
		return cmd, u
	case <-time.After(60 * time.Second):
		t.Fatal("make run printed no URL")
	}
	return nil, ""
}

// Ctrl-C under `make run` closes every connection with 1001 and the clients
// get it, even clients that keep sending while the gateway stops: the
// process waits until each close frame is written and answered (or its
// linger is over) before it exits. Exiting earlier, with a client's bytes
// unread, reset the connection, and the client saw 1006 instead (2 of 48
// clients in 12 rounds of this test before the fix).
func TestInterruptUnderMakeRunGivesEveryClient1001(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make run")
	}
	for round := range 12 {
		cmd, url := startMakeRun(t)
		const clients = 6
		codes := make(chan websocket.StatusCode, clients)
		var ready, wg sync.WaitGroup
		for i := range clients {
			ready.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				c, _, err := websocket.Dial(ctx, url+"?group=g", &websocket.DialOptions{
					HTTPHeader: http.Header{"Authorization": {"Bearer mst_signal-test"}},
				})
				if err != nil {
					ready.Done()
					codes <- -1
					return
				}
				defer c.CloseNow()
				c.Write(ctx, websocket.MessageText, []byte(`{"op":1}`)) // who am I
				c.Read(ctx)
				ready.Done()
				go func() { // keep sending until the gateway goes
					for n := 0; ; n++ {
						if c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"op":3,"id":"%d-%d"}`, i, n))) != nil {
							return
						}
						time.Sleep(time.Millisecond)
					}
				}()
				for {
					if _, _, err := c.Read(ctx); err != nil {
						if websocket.CloseStatus(err) != websocket.StatusGoingAway {
							t.Logf("round %d client %d: %v", round, i, err)
						}
						codes <- websocket.CloseStatus(err)
						return
					}
				}
			}()
		}
		ready.Wait()
		time.Sleep(50 * time.Millisecond)
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil { // Ctrl-C: the whole job
			t.Fatal(err)
		}
		wg.Wait()
		close(codes)
		for code := range codes {
			if code != websocket.StatusGoingAway {
				t.Errorf("round %d: a client got close %d, want 1001", round, code)
			}
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done: // make itself reports the interrupt, as it should
		case <-time.After(15 * time.Second):
			t.Fatalf("round %d: make run did not exit after SIGINT", round)
		}
	}
}
