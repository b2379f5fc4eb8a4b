//go:build llm

package llm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/protocol/pb"
	"github.com/lloom/lloom/test/llm/ollamatest"
)

// answerJSON is what `lloom client chat|complete --json` prints.
type answerJSON struct {
	ModelID      string `json:"model_id"`
	Executor     string `json:"executor"`
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
	Usage        struct {
		PromptTokens     uint32 `json:"prompt_tokens"`
		CompletionTokens uint32 `json:"completion_tokens"`
	} `json:"usage"`
	Receipt *struct {
		Verified            bool   `json:"verified"`
		RequestID           string `json:"request_id"`
		Executor            string `json:"executor"`
		ModelID             string `json:"model_id"`
		PromptTokens        uint32 `json:"prompt_tokens"`
		CompletionTokens    uint32 `json:"completion_tokens"`
		InputTokenPriceWei  string `json:"input_token_price_wei"`
		OutputTokenPriceWei string `json:"output_token_price_wei"`
		MinimumFeeWei       string `json:"minimum_fee_wei"`
		FeeWei              string `json:"fee_wei"`
		OutputSHA256        string `json:"output_sha256"`
		FinishReason        string `json:"finish_reason"`
	} `json:"receipt"`
	Attempts []struct {
		Executor  string `json:"executor"`
		ErrorCode int32  `json:"error_code"`
		Error     string `json:"error"`
	} `json:"attempts"`
	TTFTMs     *int64 `json:"ttft_ms"`
	DurationMs *int64 `json:"duration_ms"`
	ErrorCode  int32  `json:"error_code"`
}

// TestCLIThroughOllama drives the real binary against the real engine: a
// validator on port 0 writing its addresses to a file, an executor given
// only --backend-url (no --model: it announces what the engine lists),
// and `lloom client chat|complete` as a user runs them.
func TestCLIThroughOllama(t *testing.T) {
	eng := ollamatest.Start(t)
	c := newCLI(t, buildLloom(t))
	addr := c.startValidator(t)
	c.start("executor", "executor", "--backend-url", eng.URL(), "--validator", addr, "--listen", "/ip4/127.0.0.1/tcp/0")
	model := eng.Model()
	var execID string
	took := waitFor(t, 30*time.Second, "the engine's model discovered and announced", func() error {
		var err error
		execID, err = c.served(addr, model, true)
		return err
	})
	t.Logf("executor %s announced %s %v after it started", execID, model, took.Round(time.Millisecond))
	full := time.Duration(longAnswer / tokensPerSecond(t, eng, 1000) * float64(time.Second))

	t.Run("ChatJSON", func(t *testing.T) {
		a := c.answer(t, "", "client", "chat", model, "Tell me a story.", "--max-tokens", "16", "--json", "--validator", addr)
		checkCLIAnswer(t, a, model, execID, 16)
	})

	t.Run("CompleteJSON", func(t *testing.T) {
		a := c.answer(t, "", "client", "complete", model, "Once upon a time", "--max-tokens", "16", "--json", "--validator", addr)
		checkCLIAnswer(t, a, model, execID, 16)
	})

	t.Run("ChatFromStdinWithSystem", func(t *testing.T) {
		// The prompt comes from standard input (its final newline dropped)
		// and follows the system message: the engine, asked directly for
		// exactly that, gives the same text and prompt token count.
		a := c.answer(t, "Summarise this\n", "client", "chat", model, "--system", "Be brief", "--max-tokens", "8",
			"--seed", "42", "--temperature", "0", "--json", "--validator", addr)
		checkCLIAnswer(t, a, model, execID, 8)
		req := seeded(client.Request{Model: model, Messages: []*pb.ChatMessage{
			{Role: "system", Content: "Be brief"}, {Role: "user", Content: "Summarise this"}}}, 8)
		want := direct(t, eng, req)
		if a.Text != want.text || a.Usage.PromptTokens != want.promptTokens {
			t.Errorf("got %q with %d prompt tokens; the engine gives %q with %d for the system message and the stdin prompt",
				a.Text, a.Usage.PromptTokens, want.text, want.promptTokens)
		}
	})

	t.Run("StreamsToStdout", func(t *testing.T) {
		r := c.run("", "client", "chat", model, "Hello there.", "--max-tokens", "16", "--seed", "42", "--temperature", "0", "--validator", addr)
		if r.code != 0 {
			t.Fatalf("%s", r)
		}
		want := direct(t, eng, seeded(chatRequest(model, "Hello there."), 16))
		if r.stdout != want.text+"\n" {
			t.Errorf("stdout %q, want the engine's answer %q and a newline", r.stdout, want.text)
		}
		if line := strings.TrimSpace(r.stderr); strings.Count(line, "\n") != 0 || !strings.Contains(line, execID) ||
			!strings.Contains(line, "+16 tokens") || !strings.Contains(line, "receipt verified") {
			t.Errorf("stderr %q: want one summary line naming the executor, 16 tokens and the verified receipt", r.stderr)
		}
	})

	// A client interrupted mid-answer (Ctrl-C) or killed outright makes the
	// executor cancel the engine's generation: the engine's handler returns
	// long before a full answer, and the next request is served.
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"CtrlC", syscall.SIGINT}, {"SIGKILL", syscall.SIGKILL}} {
		sig := tc.sig
		t.Run(tc.name, func(t *testing.T) {
			from := len(engineLog(t, eng))
			p := c.start("client", "client", "chat", model, "Go on forever.", "--max-tokens", fmt.Sprint(longAnswer), "--validator", addr)
			waitFor(t, 30*time.Second, "the answer streaming to stdout", func() error {
				if p.stdout.String() != "" {
					return nil
				}
				select {
				case <-p.done:
					t.Fatalf("the client exited %d before answering: %s", p.code, p.stderr.String())
				default:
				}
				return fmt.Errorf("nothing on stdout yet; stderr: %q", p.stderr.String())
			})
			sent := time.Now()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := p.wait(t, 5*time.Second)
			if sig == syscall.SIGINT && (code == 0 || len(strings.Split(strings.TrimSpace(p.stderr.String()), "\n")) != 1) {
				t.Errorf("interrupted client: exit %d, stderr %q; want a non-zero exit and one line", code, p.stderr.String())
			}
			g := waitGin(t, eng, from, 1, "/v1/chat/completions", 5*time.Second)[0]
			ended := time.Since(sent)
			if g.duration >= full/2 {
				t.Errorf("engine request %v: a full answer takes about %v, so it was not aborted", g, full)
			}
			t.Logf("%v: the engine's request ended within %v of the signal (%v)", sig, ended.Round(time.Millisecond), g)
			a := c.answer(t, "", "client", "chat", model, "Still there?", "--max-tokens", "16", "--json", "--validator", addr)
			checkCLIAnswer(t, a, model, execID, 16)
		})
	}

	// The engine dies: the next chat fails with 6003 and a non-zero exit,
	// validators then list the model unavailable; the engine comes back:
	// the executor's probe (every 3 s by default) makes it available again
	// and chat works, without restarting the executor.
	t.Run("EngineDownAndBack", func(t *testing.T) {
		eng.Kill()
		r := c.run("", "client", "chat", model, "Anyone?", "--max-tokens", "8", "--json", "--validator", addr)
		var a answerJSON
		if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
			t.Fatalf("%s\nnot JSON: %v", r, err)
		}
		if r.code == 0 || a.ErrorCode != 6003 || len(a.Attempts) != 1 || a.Attempts[0].ErrorCode != 6003 || a.Receipt != nil {
			t.Errorf("%s\nwant a non-zero exit, error_code 6003 in the answer and its one attempt, no receipt", r)
		}
		if line := strings.TrimSpace(r.stderr); strings.Contains(line, "\n") || !strings.Contains(line, "6003") {
			t.Errorf("stderr %q: want one line naming code 6003", r.stderr)
		}
		waitFor(t, 10*time.Second, "validator lists the model unavailable", func() error {
			_, err := c.served(addr, model, false)
			return err
		})
		start := time.Now()
		eng.Restart(t)
		back := waitFor(t, 15*time.Second, "validator lists the model available again", func() error {
			_, err := c.served(addr, model, true)
			return err
		})
		t.Logf("engine restarted in %v; model available again %v later", time.Since(start)-back, back.Round(time.Millisecond))
		a2 := c.answer(t, "", "client", "chat", model, "Back again?", "--max-tokens", "8", "--json", "--validator", addr)
		checkCLIAnswer(t, a2, model, execID, 8)
	})
}

// startValidator runs `lloom validator --port 0 --addr-file F` and returns
// its loopback TCP address from F.
func (c *cli) startValidator(t *testing.T) string {
	t.Helper()
	file := filepath.Join(c.dir, "validator.addr")
	c.start("validator", "validator", "--port", "0", "--addr-file", file)
	var addr string
	waitFor(t, 30*time.Second, "validator address file", func() error {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		for _, l := range strings.Fields(string(b)) {
			if strings.HasPrefix(l, "/ip4/127.0.0.1/tcp/") {
				addr = l
				return nil
			}
		}
		return fmt.Errorf("no /ip4/127.0.0.1/tcp/ address in %q", b)
	})
	return addr
}

// served asks the validator (`lloom client query --json`) for model and
// returns the executor listing it with available = want.
func (c *cli) served(addr, model string, want bool) (string, error) {
	r := c.run("", "client", "query", model, "--include-unavailable", "--json", "--validator", addr)
	var q struct {
		Executors []struct {
			PeerID    string `json:"peer_id"`
			Available bool   `json:"available"`
		} `json:"executors"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &q); err != nil {
		return "", fmt.Errorf("%s: %v", r, err)
	}
	for _, x := range q.Executors {
		if x.Available == want {
			return x.PeerID, nil
		}
	}
	return "", fmt.Errorf("no executor lists %s with available=%v: %s", model, want, r.stdout)
}

// answer runs a client command that must succeed and decodes its JSON,
// failing the test if a field a script reads is missing.
func (c *cli) answer(t *testing.T, stdin string, args ...string) answerJSON {
	t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 {
		t.Fatalf("%s\nwant exit status 0", r)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
		t.Fatalf("%s\nnot one JSON object: %v", r, err)
	}
	for _, k := range []string{"model_id", "executor", "text", "finish_reason", "usage", "receipt", "attempts", "ttft_ms", "duration_ms"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, r.stdout)
		}
	}
	var a answerJSON
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
		t.Fatalf("%s\n%v", r, err)
	}
	return a
}

// checkCLIAnswer checks a complete answer of tokens tokens (the model
// never stops by itself, so finish_reason is "length").
func checkCLIAnswer(t *testing.T, a answerJSON, model, execID string, tokens uint32) {
	t.Helper()
	if a.ModelID != model || a.Executor != execID || a.Text == "" || a.FinishReason != "length" {
		t.Errorf("model_id %q executor %q text %q finish_reason %q; want %s, %s, some text, length",
			a.ModelID, a.Executor, a.Text, a.FinishReason, model, execID)
	}
	if a.Usage.CompletionTokens != tokens || a.Usage.PromptTokens == 0 {
		t.Errorf("usage %+v: want %d completion tokens and the prompt counted", a.Usage, tokens)
	}
	if len(a.Attempts) != 1 || a.Attempts[0].Executor != execID || a.Attempts[0].ErrorCode != 0 {
		t.Errorf("attempts %+v: want one, at %s, without error", a.Attempts, execID)
	}
	if a.TTFTMs == nil || a.DurationMs == nil || *a.TTFTMs < 0 || *a.TTFTMs > *a.DurationMs || *a.DurationMs <= 0 {
		t.Errorf("ttft_ms %v duration_ms %v", a.TTFTMs, a.DurationMs)
	}
	r := a.Receipt
	if r == nil || !r.Verified {
		t.Fatalf("receipt %+v: want a verified one", r)
	}
	if r.Executor != execID || r.ModelID != model || r.FinishReason != a.FinishReason ||
		r.PromptTokens != a.Usage.PromptTokens || r.CompletionTokens != a.Usage.CompletionTokens {
		t.Errorf("receipt %+v does not match the answer %+v", r, a)
	}
	if sum := sha256.Sum256([]byte(a.Text)); r.OutputSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("receipt output_sha256 %s is not the digest of the text", r.OutputSHA256)
	}
	if want := fee(t, r.PromptTokens, r.CompletionTokens, r.InputTokenPriceWei, r.OutputTokenPriceWei, r.MinimumFeeWei); r.FeeWei != want {
		t.Errorf("receipt fee_wei %s, want %s", r.FeeWei, want)
	}
}

// fee is DESIGN §8's max(minimum, prompt × input + completion × output).
func fee(t *testing.T, prompt, completion uint32, in, out, minimum string) string {
	t.Helper()
	num := func(s string) *big.Int {
		if s == "" {
			s = "0"
		}
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			t.Fatalf("wei %q is not a decimal number", s)
		}
		return n
	}
	f := new(big.Int).Mul(big.NewInt(int64(prompt)), num(in))
	f.Add(f, new(big.Int).Mul(big.NewInt(int64(completion)), num(out)))
	if m := num(minimum); m.Cmp(f) > 0 {
		f = m
	}
	return f.String()
}
