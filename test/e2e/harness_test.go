package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeout bounds every wait that a test does not bound itself. It is
// generous: the nodes run with the race detector on two busy cores.
const Timeout = 30 * time.Second

// testVersion is stamped into the binary, so that `lloom version` shows
// that -ldflags reaches it.
const testVersion = "v0.0.0-e2e"

// bin is the lloom binary TestMain built.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "lloom-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	bin, err = build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles ./cmd/lloom of the module the tests run in, with the race
// detector, into dir.
func build(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	path := filepath.Join(dir, "lloom")
	cmd := exec.Command("go", "build", "-race", "-ldflags", "-X main.version="+testVersion, "-o", path, "./cmd/lloom")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/lloom: %w\n%s", err, out)
	}
	return path, nil
}

// Harness runs the lloom processes of one test, each node in its own
// directory, and stops them when the test ends.
type Harness struct {
	t   *testing.T
	dir string

	mu    sync.Mutex
	nodes []*Node // guarded by mu
	runs  int     // guarded by mu: one-shot commands run, for their directories
}

// NewHarness returns a harness for t; it skips t with -short.
func NewHarness(t *testing.T) *Harness {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	h := &Harness{t: t, dir: t.TempDir()}
	t.Cleanup(h.cleanup) // runs before TempDir's own cleanup
	return h
}

// cleanup stops every node still running, fails the test for a node that
// does not exit cleanly on SIGTERM or whose stderr shows a data race or a
// panic, and prints the nodes' logs when the test failed.
func (h *Harness) cleanup() {
	h.mu.Lock()
	nodes := slices.Clone(h.nodes)
	h.mu.Unlock()
	// Executors first, so that their REMOVAL still finds a validator.
	for _, validators := range []bool{false, true} {
		var wg sync.WaitGroup
		for _, n := range nodes {
			if n.validator != validators || !n.Running() {
				continue
			}
			wg.Go(func() {
				if code := n.Stop(); code != 0 {
					h.t.Errorf("%s: exit status %d after SIGTERM, want 0", n.Name, code)
				}
			})
		}
		wg.Wait()
	}
	for _, n := range nodes {
		b, _ := os.ReadFile(n.LogPath())
		if bad := crashText(string(b)); bad != "" {
			h.t.Errorf("%s: stderr shows %q", n.Name, bad)
		}
	}
	if h.t.Failed() {
		for _, n := range nodes {
			b, _ := os.ReadFile(n.LogPath())
			h.t.Logf("--- log of %s (%s):\n%s", n.Name, n.LogPath(), tail(string(b), 200))
		}
	}
}

// crashText returns what in a process's stderr shows a crash or a data
// race, or "".
func crashText(stderr string) string {
	for _, s := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(stderr, s) {
			return s
		}
	}
	return stackTrace.FindString(stderr)
}

// stackTrace matches the header of a goroutine's stack in a Go crash.
var stackTrace = regexp.MustCompile(`goroutine \d+ \[`)

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = append([]string{fmt.Sprintf("[%d lines left out]", len(ls)-lines)}, ls[len(ls)-lines:]...)
	}
	return strings.Join(ls, "\n")
}

// environ is the environment of every lloom process: the test's own,
// without what would change lloom's behaviour, plus a home of its own and
// no TCP port reuse (so that a leftover process cannot share a port).
func environ(home string, extra []string) []string {
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
	env = append(env,
		"HOME="+home,
		"LLOOM_HOME="+home,
		"LIBP2P_TCP_REUSEPORT=false",
		// A race-enabled binary otherwise sleeps a second at exit.
		"GORACE=atexit_sleep_ms=0",
	)
	return append(env, extra...)
}

// Result is a finished one-shot command.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int
}

func (r Result) String() string {
	return fmt.Sprintf("`lloom %s`: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// Run runs `lloom args…` to completion in a directory of its own, with env
// (KEY=VALUE) added to its environment. It fails the test if the command
// cannot start, does not finish within Timeout, or crashes.
func (h *Harness) Run(env []string, args ...string) Result {
	h.t.Helper()
	h.mu.Lock()
	h.runs++
	dir := filepath.Join(h.dir, fmt.Sprintf("run%d", h.runs))
	h.mu.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = environ(dir, env)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		h.t.Fatalf("`lloom %s` did not finish within %s\nstderr: %s", strings.Join(args, " "), Timeout, r.Stderr)
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		h.t.Fatalf("`lloom %s`: %v", strings.Join(args, " "), err)
	}
	if bad := crashText(r.Stderr); bad != "" {
		h.t.Errorf("%s\nstderr shows %q", r, bad)
	}
	return r
}

// WaitInterval is how often WaitFor checks its condition.
const WaitInterval = 100 * time.Millisecond

// fatalError makes WaitFor give up at once.
type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }

// Fatal marks err as one that no amount of waiting can fix: WaitFor fails
// the test at once.
func Fatal(err error) error { return fatalError{err} }

// WaitFor calls cond every WaitInterval until it returns nil, and returns
// how long that took. If cond still fails after timeout, or fails with an
// error made by Fatal, the test fails with cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		var f fatalError
		if errors.As(err, &f) {
			t.Fatal(f.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not the case after %s: %v", timeout, err)
		}
		time.Sleep(WaitInterval)
	}
}

// hasFlag reports whether args give one of the flags.
func hasFlag(args []string, flags ...string) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		if slices.Contains(flags, name) {
			return true
		}
	}
	return false
}
