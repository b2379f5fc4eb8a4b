//go:build llm

package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real `lloom` binary, run as a user would, each process in its own
// directory (its identity and home), stopped when the test ends.

const (
	cliTimeout  = time.Minute      // one `lloom client …` command
	stopTimeout = 10 * time.Second // SIGTERM to exit
)

// buildLloom builds ./cmd/lloom of this module, with the race detector,
// into a temporary directory.
func buildLloom(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: %q, %v", out, err)
	}
	bin := filepath.Join(t.TempDir(), "lloom")
	cmd := exec.Command("go", "build", "-race", "-o", bin, "./cmd/lloom")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/lloom: %v\n%s", err, out)
	}
	return bin
}

// cli runs one test's lloom processes.
type cli struct {
	t   *testing.T
	bin string
	dir string

	mu   sync.Mutex
	runs int // guarded by mu: directories handed out
}

func newCLI(t *testing.T, bin string) *cli {
	return &cli{t: t, bin: bin, dir: t.TempDir()}
}

// newDir returns a fresh directory for one process.
func (c *cli) newDir(name string) string {
	c.mu.Lock()
	c.runs++
	d := filepath.Join(c.dir, fmt.Sprintf("%02d-%s", c.runs, name))
	c.mu.Unlock()
	if err := os.MkdirAll(d, 0o700); err != nil {
		c.t.Fatal(err)
	}
	return d
}

// environ is the test's environment without what would change lloom's
// behaviour, with a home of the process's own.
func environ(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "LLOOM_"), k == "VALIDATOR_ADDRESS", k == "LOG_LEVEL", k == "LOG_FORMAT",
			k == "HOME", k == "GORACE", k == "LIBP2P_TCP_REUSEPORT":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "LLOOM_HOME="+home, "LIBP2P_TCP_REUSEPORT=false",
		"GORACE=atexit_sleep_ms=0") // a race-enabled binary otherwise sleeps a second at exit
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a running lloom process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan struct{} // closed when it has exited
	code   int           // exit status, valid after done; -1 when killed by a signal
}

// start starts `lloom args…` and stops it (SIGTERM, then SIGKILL) when the
// test ends, failing the test if its output shows a crash or a data race.
func (c *cli) start(name string, args ...string) *proc {
	c.t.Helper()
	dir := c.newDir(name)
	p := &proc{name: name, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(c.bin, args...)
	p.cmd.Dir, p.cmd.Env = dir, environ(dir)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start lloom %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if err != nil && !errors.As(err, new(*exec.ExitError)) {
			p.code = -2
		}
		close(p.done)
	}()
	c.t.Cleanup(func() {
		p.stop()
		if bad := crashText(p.stderr.String()); bad != "" {
			c.t.Errorf("%s: stderr shows %q", name, bad)
		}
		if c.t.Failed() {
			c.t.Logf("--- stderr of %s (lloom %s):\n%s", name, strings.Join(args, " "), tail(p.stderr.String(), 60))
		}
	})
	return p
}

// stop sends SIGTERM and waits, then SIGKILLs.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits for the process to exit by itself within d.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		t.Fatalf("%s still running after %v", p.name, d)
		return 0
	}
}

// result is a finished one-shot command.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("`lloom %s`: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs `lloom args…` to completion with stdin as its standard input.
func (c *cli) run(stdin string, args ...string) result {
	c.t.Helper()
	dir := c.newDir("client")
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir, cmd.Env = dir, environ(dir)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		c.t.Fatalf("`lloom %s` did not finish within %v\nstderr: %s", strings.Join(args, " "), cliTimeout, r.stderr)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		c.t.Fatalf("`lloom %s`: %v", strings.Join(args, " "), err)
	}
	if bad := crashText(r.stderr); bad != "" {
		c.t.Errorf("%s\nstderr shows %q", r, bad)
	}
	return r
}

// crashText returns what in a process's stderr shows a crash or a data
// race, or "".
func crashText(stderr string) string {
	for _, s := range []string{"WARNING: DATA RACE", "panic:", "fatal error:", "goroutine 1 ["} {
		if strings.Contains(stderr, s) {
			return s
		}
	}
	return ""
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// waitFor polls cond every 50 ms until it returns nil, failing the test
// with its last error after d; it returns how long that took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
