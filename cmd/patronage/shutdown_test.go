package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the real patronage binary for tests that need a
// separate process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "patronage")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSIGTERMLetsASlowRequestFinishThenExitsZero starts the real binary,
// begins a request whose body arrives slowly, sends SIGTERM while it is in
// flight, and checks that the request still gets its answer and the
// process exits 0.
func TestSIGTERMLetsASlowRequestFinishThenExitsZero(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "HTTP_ADDR=127.0.0.1:0", "DATA_DIR="+t.TempDir(), "SHUTDOWN_TIMEOUT=30s", "ENV_FILE=/dev/null")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	// Follow the server's log: the address it listens on, then its shutdown.
	events := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var entry map[string]any
			if json.Unmarshal(sc.Bytes(), &entry) == nil {
				events <- entry
			}
		}
		close(events)
	}()
	waitFor := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("the server exited before logging %q", msg)
				}
				if e["msg"] == msg {
					return e
				}
			case <-timeout:
				t.Fatalf("no %q in the log within 30s", msg)
			}
		}
	}
	addr := waitFor("listening")["addr"].(string)

	body := `{"email":"slow@example.org","name":"Slow Reader"}`
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Expect: 100-continue makes the server say when the handler starts
	// reading the body, so SIGTERM provably lands mid-request.
	head := fmt.Sprintf("POST /api/v1/members HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", addr, len(body))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	replies := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(replies, nil); err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue once the handler reads the body; got %v, %v", resp, err)
	}
	if _, err := io.WriteString(conn, body[:10]); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor("shutting down: finishing in-flight requests")

	// The request in flight still completes.
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatalf("finish the body: %v", err)
	}
	resp, err := http.ReadResponse(replies, nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(answer), "check_email") {
		t.Errorf("in-flight request = %d %s, want 202 check_email", resp.StatusCode, answer)
	}

	waitFor("stopped")
	if err := cmd.Wait(); err != nil {
		t.Errorf("the process did not exit 0: %v", err)
	}
}
