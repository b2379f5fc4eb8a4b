package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// The JSON that `lloom client chat|complete --json` prints.

// ChatOut is the answer object.
type ChatOut struct {
	ModelID      string `json:"model_id"`
	Executor     string `json:"executor"`
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
	Usage        struct {
		PromptTokens     uint32 `json:"prompt_tokens"`
		CompletionTokens uint32 `json:"completion_tokens"`
	} `json:"usage"`
	Receipt    *ReceiptOut    `json:"receipt"`
	Attempts   []AttemptOut   `json:"attempts"`
	Candidates []CandidateOut `json:"candidates"`
	TTFTMs     int64          `json:"ttft_ms"`
	DurationMs int64          `json:"duration_ms"`
	Complete   bool           `json:"complete"`
	Error      string         `json:"error"`
	ErrorCode  int32          `json:"error_code"`
}

// ReceiptOut is the answer's receipt, as the client checked it.
type ReceiptOut struct {
	Verified            bool   `json:"verified"`
	RequestID           string `json:"request_id"`
	Executor            string `json:"executor"`
	Client              string `json:"client"`
	ModelID             string `json:"model_id"`
	PromptTokens        uint32 `json:"prompt_tokens"`
	CompletionTokens    uint32 `json:"completion_tokens"`
	InputTokenPriceWei  string `json:"input_token_price_wei"`
	OutputTokenPriceWei string `json:"output_token_price_wei"`
	MinimumFeeWei       string `json:"minimum_fee_wei"`
	FeeWei              string `json:"fee_wei"`
	StartedAtMs         int64  `json:"started_at_ms"`
	FinishedAtMs        int64  `json:"finished_at_ms"`
	OutputSHA256        string `json:"output_sha256"`
	FinishReason        string `json:"finish_reason"`
	Envelope            string `json:"envelope"`
}

// AttemptOut is one executor tried.
type AttemptOut struct {
	Executor  string `json:"executor"`
	ErrorCode int32  `json:"error_code"`
	Error     string `json:"error"`
}

// CandidateOut is one executor the client saw.
type CandidateOut struct {
	Executor string `json:"executor"`
	Status   string `json:"status"`
	Skipped  string `json:"skipped"`
}

// chatModel is the model every fake backend of these tests serves.
const chatModel = "test-model"

// newFake starts a fake OpenAI-compatible backend in the test process; the
// executor processes reach it over loopback HTTP. Make it before the
// harness, so that the executors stop before it does.
func newFake(t *testing.T, opts ...backendtest.Option) *backendtest.Fake {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	return backendtest.New(t, append([]backendtest.Option{backendtest.WithModels(chatModel)}, opts...)...)
}

// StartBackendExecutor starts an executor serving chatModel from the
// backend at url, with args added.
func (h *Harness) StartBackendExecutor(name, validator, url string, args ...string) *Node {
	h.t.Helper()
	return h.StartExecutor(name, append([]string{"--validator", validator, "--backend-url", url, "--model", chatModel}, args...)...)
}

// RunWith is Run with stdin given.
func (h *Harness) RunWith(stdin string, args ...string) Result {
	h.t.Helper()
	dir := h.t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = environ(dir, nil)
	cmd.Stdin = strings.NewReader(stdin)
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

// ChatJSON runs `lloom client CMD… --json --validator v` (CMD chat or
// complete) and decodes its stdout, which must be one JSON object whether
// the request succeeded or not.
func (h *Harness) ChatJSON(v *Node, stdin string, args ...string) (ChatOut, Result) {
	h.t.Helper()
	r := h.RunWith(stdin, append(append([]string{"client"}, args...), "--json", "--validator", v.Addr)...)
	var out ChatOut
	if err := decodeStrict(r.Stdout, &out); err != nil {
		h.t.Fatalf("%s\nstdout is not one JSON answer: %v", r, err)
	}
	return out, r
}

// availability is a WaitFor condition: `client list --include-unavailable`
// shows executor id serving model with available as given.
func (h *Harness) availability(v *Node, model, id string, available bool) func() error {
	return func() error {
		var got ModelsOut
		if _, err := h.ClientJSON(nil, &got, "list", "--include-unavailable", "--validator", v.Addr); err != nil {
			return err
		}
		x := got.Model(model).Executor(id)
		switch {
		case x == nil:
			return fmt.Errorf("client list does not show %s serving %q: %s", id, model, compactModels(got))
		case x.Available != available:
			return fmt.Errorf("client list shows %q at %s with available=%v, want %v", model, id, x.Available, available)
		}
		return nil
	}
}

func compactModels(m ModelsOut) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// clientProc is a `lloom client …` process whose standard output the test
// reads as it comes.
type clientProc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{} // closed when the process has exited and stdout is read

	mu     sync.Mutex
	stdout []byte      // guarded by mu
	reads  []time.Time // guarded by mu: when each piece of stdout arrived
}

// StartClient starts `lloom client args…` in the background.
func (h *Harness) StartClient(args ...string) *clientProc {
	h.t.Helper()
	dir := h.t.TempDir()
	p := &clientProc{done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"client"}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Env = environ(dir, nil)
	p.cmd.Stderr = &p.stderr
	setDeathSignal(p.cmd)
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			if n > 0 {
				p.mu.Lock()
				p.stdout = append(p.stdout, buf[:n]...)
				p.reads = append(p.reads, time.Now())
				p.mu.Unlock()
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					h.t.Logf("client stdout: %v", err)
				}
				_ = p.cmd.Wait()
				return
			}
		}
	}()
	h.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Stdout returns what the process has written so far, and when each piece
// arrived.
func (p *clientProc) Stdout() (string, []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.stdout), append([]time.Time(nil), p.reads...)
}

// Wait waits for the exit and returns the exit status (-1: killed by a
// signal); it fails t after timeout.
func (p *clientProc) Wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("`lloom %s` still running after %s", strings.Join(p.cmd.Args[1:], " "), timeout)
		return 0
	}
}

// Stderr is what the process wrote to stderr; call it after Wait.
func (p *clientProc) Stderr() string { return p.stderr.String() }
