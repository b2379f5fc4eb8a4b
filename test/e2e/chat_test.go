package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
)

// Prices of the priced executor: the output price does not fit in 64 bits,
// so a fee computed in fixed precision would show.
const (
	inPrice  = "1000"
	outPrice = "30000000000000000000"
	minFee   = "5"
)

// startPriced starts a validator and an executor whose config file names
// the fake as its backend and prices chatModel.
func startPriced(t *testing.T, h *Harness, fake *backendtest.Fake) (v, e *Node) {
	t.Helper()
	cfg := filepath.Join(h.dir, "executor.toml")
	toml := fmt.Sprintf(`[backend]
url = %q

[[models]]
id = %q
backend = "vllm"
features = ["chat", "completion"]
capacity = 2
[models.pricing]
input_token_price_wei = %q
output_token_price_wei = %q
minimum_fee_wei = %q
`, fake.URL(), chatModel, inPrice, outPrice, minFee)
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	v = h.StartValidator("validator")
	e = h.StartExecutor("executor", "--validator", v.Addr, "--config", cfg)
	WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{chatModel: {e.PeerID}}))
	return v, e
}

// fee is max(minimum, prompt × input price + completion × output price).
func fee(prompt, completion uint32) string {
	in, _ := new(big.Int).SetString(inPrice, 10)
	out, _ := new(big.Int).SetString(outPrice, 10)
	f := new(big.Int).Mul(big.NewInt(int64(prompt)), in)
	f.Add(f, new(big.Int).Mul(big.NewInt(int64(completion)), out))
	if m, _ := new(big.Int).SetString(minFee, 10); f.Cmp(m) < 0 {
		f = m
	}
	return f.String()
}

// TestChat: a prompt goes through a validator and an executor to a fake
// backend, and what the backend produced arrives, streamed, with a receipt
// that verifies for exactly that text, usage and price.
func TestChat(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	h := NewHarness(t)
	v, e := startPriced(t, h, fake)

	t.Run("streams to stdout, one summary line to stderr", func(t *testing.T) {
		fake.SetDelay(0, 150*time.Millisecond)
		defer fake.SetDelay(0, 0)
		p := h.StartClient("chat", chatModel, "Why is the sky blue?", "--validator", v.Addr)
		code := p.Wait(t, Timeout)
		out, reads := p.Stdout()
		if code != 0 || out != "w0 w1 w2 w3 w4 w5 w6 w7\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and the fake's eight words", code, out, p.Stderr())
		}
		// Eight tokens 150ms apart: the first words are on stdout about a
		// second before the last.
		if len(reads) < 3 || reads[len(reads)-1].Sub(reads[0]) < 700*time.Millisecond {
			t.Errorf("stdout arrived in %d pieces over %s; want the answer streamed as the backend produced it (about 1s)",
				len(reads), reads[len(reads)-1].Sub(reads[0]))
		}
		want := regexp.MustCompile(`^executor ` + e.PeerID + ` · 5\+8 tokens · fee ` + fee(5, 8) +
			` wei · first token [0-9.]+m?s · [0-9.]+m?s · receipt verified\n$`)
		if !want.MatchString(p.Stderr()) {
			t.Errorf("stderr %q; want one summary line matching %s", p.Stderr(), want)
		}
	})

	t.Run("json: every field, as the backend reported", func(t *testing.T) {
		fake.ResetStats()
		fake.SetDelay(300*time.Millisecond, 0)
		defer fake.SetDelay(0, 0)
		got, r := h.ChatJSON(v, "", "chat", chatModel, "Why is the sky blue?", "--system", "Be brief",
			"--max-tokens", "5", "--temperature", "0.7", "--top-p", "0.9", "--seed", "42", "--stop", "zz", "--stop", "w9")
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("%s\nwant exit 0 and nothing on stderr", r)
		}
		checkChatShape(t, r.Stdout)
		checkAnswer(t, got, e, "w0 w1 w2 w3 w4", "length", 7, 5)
		if got.TTFTMs < 300 || got.TTFTMs > got.DurationMs {
			t.Errorf("ttft_ms %d, duration_ms %d; want ttft at least the backend's 300ms delay, and at most the duration",
				got.TTFTMs, got.DurationMs)
		}
		if len(got.Attempts) != 1 || got.Attempts[0].Executor != e.PeerID || got.Attempts[0].ErrorCode != 0 {
			t.Errorf("attempts %+v; want one, to %s, without error", got.Attempts, e.PeerID)
		}
		reqs := fake.Requests()
		if len(reqs) != 1 {
			t.Fatalf("the backend received %d requests, want 1", len(reqs))
		}
		q := reqs[0]
		wantMsgs := []backendtest.Message{{Role: "system", Content: "Be brief"}, {Role: "user", Content: "Why is the sky blue?"}}
		switch {
		case q.Path != "/v1/chat/completions" || q.Model != chatModel || !slices.Equal(q.Messages, wantMsgs):
			t.Errorf("backend received %s %q %+v; want a chat completion for %q with %+v", q.Path, q.Model, q.Messages, chatModel, wantMsgs)
		case q.MaxTokens == nil || *q.MaxTokens != 5, q.Temperature == nil || *q.Temperature != 0.7,
			q.TopP == nil || *q.TopP != 0.9, q.Seed == nil || *q.Seed != 42, !slices.Equal(q.Stop, []string{"zz", "w9"}):
			t.Errorf("backend received max_tokens %v, temperature %v, top_p %v, seed %v, stop %q; want 5, 0.7, 0.9, 42, [zz w9]",
				deref(q.MaxTokens), deref(q.Temperature), deref(q.TopP), deref(q.Seed), q.Stop)
		case !q.Stream || !q.IncludeUsage:
			t.Errorf("backend request stream=%v include_usage=%v, want both", q.Stream, q.IncludeUsage)
		}
	})

	t.Run("prompt from stdin", func(t *testing.T) {
		fake.ResetStats()
		got, r := h.ChatJSON(v, "Summarise this\n", "chat", chatModel, "--system", "Be brief")
		if r.Code != 0 || !got.Complete {
			t.Fatalf("%s\nwant a complete answer", r)
		}
		checkAnswer(t, got, e, "w0 w1 w2 w3 w4 w5 w6 w7", "stop", 4, 8)
		if reqs := fake.Requests(); len(reqs) != 1 || len(reqs[0].Messages) != 2 || reqs[0].Messages[1].Content != "Summarise this" {
			t.Errorf("backend received %+v; want the user message \"Summarise this\" read from stdin", reqs)
		}
	})

	t.Run("complete", func(t *testing.T) {
		fake.ResetStats()
		got, r := h.ChatJSON(v, "", "complete", chatModel, "Once upon a time", "--max-tokens", "3")
		if r.Code != 0 || !got.Complete {
			t.Fatalf("%s\nwant a complete answer", r)
		}
		checkAnswer(t, got, e, "w0 w1 w2", "length", 4, 3)
		if reqs := fake.Requests(); len(reqs) != 1 || reqs[0].Path != "/v1/completions" || reqs[0].Prompt != "Once upon a time" {
			t.Errorf("backend received %+v; want a text completion of \"Once upon a time\"", reqs)
		}
	})

	t.Run("stop honoured", func(t *testing.T) {
		got, r := h.ChatJSON(v, "", "chat", chatModel, "Count", "--stop", " w3")
		if r.Code != 0 || !got.Complete {
			t.Fatalf("%s\nwant a complete answer", r)
		}
		checkAnswer(t, got, e, "w0 w1 w2", "stop", 1, 3)
	})
}

func deref[T any](p *T) any {
	if p == nil {
		return "absent"
	}
	return *p
}

// chatKinds are the documented keys of an answer and their JSON kinds.
var chatKinds = jsonKinds{
	"model_id": "string", "executor": "string", "text": "string", "finish_reason": "string",
	"usage": "object", "receipt": "object", "attempts": "array", "ttft_ms": "number", "duration_ms": "number",
	"complete": "bool",
}

var receiptKinds = jsonKinds{
	"verified": "bool", "fee_wei": "string", "request_id": "string", "output_sha256": "string",
	"executor": "string", "client": "string", "model_id": "string", "prompt_tokens": "number",
	"completion_tokens": "number", "input_token_price_wei": "string", "output_token_price_wei": "string",
	"minimum_fee_wei": "string", "started_at_ms": "number", "finished_at_ms": "number",
	"finish_reason": "string", "envelope": "string",
}

// checkChatShape checks that every documented key is there, of its kind.
func checkChatShape(t *testing.T, stdout string) {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal([]byte(stdout), &top); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, "answer", top, chatKinds)
	usage, _ := top["usage"].(map[string]any)
	checkKeys(t, "answer: usage", usage, jsonKinds{"prompt_tokens": "number", "completion_tokens": "number"})
	receipt, _ := top["receipt"].(map[string]any)
	checkKeys(t, "answer: receipt", receipt, receiptKinds)
	attempts, _ := top["attempts"].([]any)
	for i, a := range attempts {
		obj, _ := a.(map[string]any)
		checkKeys(t, fmt.Sprintf("answer: attempts[%d]", i), obj, jsonKinds{"executor": "string", "error_code": "number"})
	}
}

// checkAnswer checks a complete answer from executor e against what the
// fake sent, and verifies its receipt here, independently of the client.
func checkAnswer(t *testing.T, got ChatOut, e *Node, text, finish string, prompt, completion uint32) {
	t.Helper()
	if !got.Complete || got.Error != "" || got.ModelID != chatModel || got.Executor != e.PeerID {
		t.Errorf("complete=%v error %q model %q executor %s; want a complete answer for %q from %s",
			got.Complete, got.Error, got.ModelID, got.Executor, chatModel, e.PeerID)
	}
	if got.Text != text || got.FinishReason != finish {
		t.Errorf("text %q, finish %q; want %q, %q (what the backend sent)", got.Text, got.FinishReason, text, finish)
	}
	if got.Usage.PromptTokens != prompt || got.Usage.CompletionTokens != completion {
		t.Errorf("usage %d+%d; want %d+%d (the backend's)", got.Usage.PromptTokens, got.Usage.CompletionTokens, prompt, completion)
	}
	rc := got.Receipt
	if rc == nil {
		t.Fatalf("no receipt")
	}
	switch {
	case !rc.Verified:
		t.Errorf("receipt.verified is false")
	case rc.Executor != e.PeerID || rc.ModelID != chatModel || rc.FinishReason != finish:
		t.Errorf("receipt executor %s model %q finish %q; want %s, %q, %q", rc.Executor, rc.ModelID, rc.FinishReason, e.PeerID, chatModel, finish)
	case rc.PromptTokens != prompt || rc.CompletionTokens != completion:
		t.Errorf("receipt tokens %d+%d, want %d+%d", rc.PromptTokens, rc.CompletionTokens, prompt, completion)
	case rc.InputTokenPriceWei != inPrice || rc.OutputTokenPriceWei != outPrice || rc.MinimumFeeWei != minFee:
		t.Errorf("receipt prices %s/%s min %s; want the announced %s/%s min %s",
			rc.InputTokenPriceWei, rc.OutputTokenPriceWei, rc.MinimumFeeWei, inPrice, outPrice, minFee)
	case rc.FeeWei != fee(prompt, completion):
		t.Errorf("receipt fee_wei %s, want %s", rc.FeeWei, fee(prompt, completion))
	case rc.OutputSHA256 != hex.EncodeToString(lp.OutputDigest(got.Text)):
		t.Errorf("receipt output_sha256 %s is not the SHA-256 of the text", rc.OutputSHA256)
	case rc.StartedAtMs <= 0 || rc.FinishedAtMs < rc.StartedAtMs:
		t.Errorf("receipt started_at_ms %d, finished_at_ms %d", rc.StartedAtMs, rc.FinishedAtMs)
	}
	raw, err1 := base64.StdEncoding.DecodeString(rc.Envelope)
	id, err2 := hex.DecodeString(rc.RequestID)
	exec, err3 := peer.Decode(e.PeerID)
	cl, err4 := peer.Decode(rc.Client)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			t.Fatalf("receipt %+v: %v", rc, err)
		}
	}
	if len(id) != lp.RequestIDSize || cl == exec {
		t.Errorf("receipt request_id %s, client %s: want 16 random bytes and the client's own peer id", rc.RequestID, rc.Client)
	}
	claim := lp.ReceiptClaim{Executor: exec, Client: cl, RequestID: id, ModelID: chatModel, Text: got.Text}
	if _, err := lp.VerifyReceipt(raw, claim); err != nil {
		t.Errorf("the receipt envelope does not verify here: %v", err)
	}
	claim.Text += "!"
	if _, err := lp.VerifyReceipt(raw, claim); err == nil {
		t.Errorf("the receipt verifies for a text the executor did not send")
	}
}

// TestChatBadFlags: a bad value is one clear line and exit status 2, and
// nothing is sent anywhere (the validator address is not even dialled).
func TestChatBadFlags(t *testing.T) {
	t.Parallel()
	five := []string{"--stop", "a", "--stop", "b", "--stop", "c", "--stop", "d", "--stop", "e"}
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		words []string
	}{
		{"temperature above 2", "", []string{"chat", "m", "hi", "--temperature", "3"}, []string{"--temperature 3", "0-2"}},
		{"negative temperature", "", []string{"chat", "m", "hi", "--temperature=-0.5"}, []string{"--temperature -0.5", "0-2"}},
		{"temperature word", "", []string{"chat", "m", "hi", "--temperature", "hot"}, []string{"--temperature", `"hot"`}},
		{"top-p 0", "", []string{"chat", "m", "hi", "--top-p", "0"}, []string{"--top-p 0"}},
		{"top-p above 1", "", []string{"complete", "m", "hi", "--top-p", "1.5"}, []string{"--top-p 1.5"}},
		{"max-tokens 0", "", []string{"chat", "m", "hi", "--max-tokens", "0"}, []string{"--max-tokens 0", "at least 1"}},
		{"negative max-tokens", "", []string{"chat", "m", "hi", "--max-tokens=-1"}, []string{"--max-tokens", `"-1"`}},
		{"five stops", "", append([]string{"chat", "m", "hi"}, five...), []string{"5 --stop", "at most 4"}},
		{"max-fee", "", []string{"chat", "m", "hi", "--max-fee", "1e18"}, []string{"--max-fee", `"1e18"`}},
		{"model id", "", []string{"chat", "bad model", "hi"}, []string{`"bad model"`}},
		{"empty prompt", "\n", []string{"chat", "m"}, []string{"empty prompt"}},
		{"complete without prompt", "", []string{"complete", "m"}, []string{"2 arg"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := NewHarness(t)
			r := h.RunWith(c.stdin, append(append([]string{"client"}, c.args...), "--validator", "127.0.0.1:1")...)
			if r.Code != 2 {
				t.Errorf("%s\nwant exit status 2 (bad usage)", r)
			}
			checkOneLine(t, r, c.words...)
			if r.Stdout != "" {
				t.Errorf("%s\nwant nothing on stdout", r)
			}
		})
	}
	t.Run("help names every flag", func(t *testing.T) {
		t.Parallel()
		r := NewHarness(t).Run(nil, "client", "chat", "--help")
		for _, f := range []string{"--system", "--max-tokens", "--temperature", "--top-p", "--seed", "--stop", "--max-fee",
			"--explain", "--json", "--timeout", "--max-input-price", "--backend", "--feature"} {
			if r.Code != 0 || !strings.Contains(r.Stdout, f) {
				t.Errorf("`lloom client chat --help` (exit %d) does not mention %s", r.Code, f)
			}
		}
	})
}
