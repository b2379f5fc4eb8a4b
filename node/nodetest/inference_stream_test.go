package nodetest_test

import (
	"context"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lloom/lloom/node/client"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// The first chunk reaches the client while the backend is still an hour
// away from sending the second: the answer is streamed, not buffered.
// Then a whole answer arrives exactly as the backend produced it, piece by
// piece and in order.
func TestAnswerStreamsExactlyAndIncrementally(t *testing.T) {
	tokens := []string{"Hel", "lo", ", ", "wörld", " ☃", "!", "\n", "日本語", " done"}
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithTokens(tokens...))
	v, _ := StartValidator(t, nil)
	startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
	c := NewClient(t, v)

	fake.SetDelay(0, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := newChunks()
	done := inferAsync(ctx, c, chatRequest("m1", "hi"), got.onText)
	got.waitFirst(t)
	if first := got.all()[0]; first != tokens[0] {
		t.Fatalf("first chunk %q, want %q", first, tokens[0])
	}
	select {
	case r := <-done:
		t.Fatalf("answer ended (%v) although the backend holds the rest for an hour", r.err)
	default:
	}
	cancel()
	if r := await(t, 5*time.Second, done); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled answer returned %v, want context.Canceled", r.err)
	}

	fake.SetDelay(0, 2*time.Millisecond)
	got = newChunks()
	ans, err := c.Infer(context.Background(), chatRequest("m1", "hi"), got.onText)
	if err != nil {
		t.Fatalf("infer: %v", err)
	}
	// Tokens that arrive while a frame is being written travel together,
	// so a chunk is one or more whole tokens, in order.
	if !groupsOf(got.all(), tokens) {
		t.Fatalf("client saw chunks %q, want the backend's tokens %q in order, each chunk whole tokens", got.all(), tokens)
	}
	if want := strings.Join(tokens, ""); ans.Text != want || ans.FinishReason != "stop" {
		t.Fatalf("answer %q finish %q, want %q stop", ans.Text, ans.FinishReason, want)
	}
}

// max_tokens, stop, temperature, top_p and seed reach the backend as sent;
// the usage and fee in the verified receipt are the backend's usage priced
// as announced: max(minimum fee, p*in + c*out) in arbitrary precision. A
// backend reporting no usage is charged by its content deltas.
func TestParametersUsageAndFee(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("tok", "min"))
	v, _ := StartValidator(t, nil)
	tok, minFee := Model("tok", 2), Model("min", 2)
	tok.Pricing = &pb.Pricing{InputTokenPriceWei: "123456789012345678901", OutputTokenPriceWei: "98765432109876543210", MinimumFeeWei: "7"}
	minFee.Pricing = &pb.Pricing{InputTokenPriceWei: "1", OutputTokenPriceWei: "2", MinimumFeeWei: "000100000000000000000000000000"}
	e := startServing(t, v, fake, []*pb.ModelDescriptor{tok, minFee}, nil)
	c := NewClient(t, v)

	maxTokens, temp, topP, seed := uint32(5), 0.7, 0.9, int64(-42)
	req := chatRequest("tok", "four words of prompt")
	req.MaxTokens, req.Temperature, req.TopP, req.Seed, req.Stop = &maxTokens, &temp, &topP, &seed, []string{" w3"}
	ans, err := c.Infer(context.Background(), req, nil)
	if err != nil {
		t.Fatalf("infer: %v", err)
	}
	rs := fake.Requests()
	if len(rs) != 1 {
		t.Fatalf("backend received %d requests, want 1", len(rs))
	}
	r := rs[0]
	switch {
	case r.Path != "/v1/chat/completions" || r.Model != "tok" || len(r.Messages) != 1 || r.Messages[0].Content != "four words of prompt":
		t.Fatalf("backend received %+v", r)
	case r.MaxTokens == nil || *r.MaxTokens != 5, r.Temperature == nil || *r.Temperature != 0.7,
		r.TopP == nil || *r.TopP != 0.9, r.Seed == nil || *r.Seed != -42, !slices.Equal(r.Stop, []string{" w3"}):
		t.Fatalf("backend received max_tokens %v temperature %v top_p %v seed %v stop %q; want 5 0.7 0.9 -42 [\" w3\"]",
			deref(r.MaxTokens), deref(r.Temperature), deref(r.TopP), deref(r.Seed), r.Stop)
	case !r.Stream || !r.IncludeUsage:
		t.Fatalf("backend request not streamed with usage: %+v", r)
	}
	// The fake's default words cut by max_tokens 5, then before " w3".
	if ans.Text != "w0 w1 w2" || ans.FinishReason != "stop" {
		t.Fatalf("answer %q finish %q, want \"w0 w1 w2\" stop", ans.Text, ans.FinishReason)
	}
	// The fake counts a prompt's words and the tokens it sent.
	checkReceipt(t, c, e.ID().String(), ans, "tok", 4, 3, new(big.Int).Add(
		mul("123456789012345678901", 4), mul("98765432109876543210", 3)).String(), tok.Pricing)

	ans, err = c.Infer(context.Background(), chatRequest("min", "one"), nil)
	if err != nil {
		t.Fatalf("infer: %v", err)
	}
	checkReceipt(t, c, e.ID().String(), ans, "min", 1, 8, "100000000000000000000000000", minFee.Pricing)

	fake.SetNoUsage(true)
	ans, err = c.Infer(context.Background(), chatRequest("min", "one two"), nil)
	if err != nil {
		t.Fatalf("infer without usage: %v", err)
	}
	if u := ans.Usage; u.GetPromptTokens() != 0 || u.GetCompletionTokens() != 8 {
		t.Fatalf("usage without the backend's: %v, want 0 prompt and 8 completion tokens (one per delta)", u)
	}
}

// A backend token longer than a chunk may carry is split on code point
// boundaries into valid UTF-8 chunks that reassemble to the token.
func TestLongTokenSplitOnRuneBoundaries(t *testing.T) {
	long := "a" + strings.Repeat("é", 20000) + "€" // the cut at MaxChunkText falls inside an é
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithTokens("start ", long, " end"))
	v, _ := StartValidator(t, nil)
	startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
	c := NewClient(t, v)
	got := newChunks()
	ans, err := c.Infer(context.Background(), chatRequest("m1", "hi"), got.onText)
	if err != nil {
		t.Fatalf("infer: %v", err)
	}
	pieces := got.all()
	// The text may travel coalesced, but 40 KB never fits in one chunk.
	if len(pieces) < 2 {
		t.Fatalf("%d chunks, want the long text split in at least two", len(pieces))
	}
	for i, p := range pieces {
		if len(p) == 0 || len(p) > lp.MaxChunkText || !utf8.ValidString(p) {
			t.Fatalf("chunk %d: %d bytes, valid UTF-8 %v; want 1..%d bytes of valid UTF-8", i, len(p), utf8.ValidString(p), lp.MaxChunkText)
		}
	}
	if want := "start " + long + " end"; strings.Join(pieces, "") != want || ans.Text != want {
		t.Fatal("chunks do not reassemble to the backend's text")
	}
}

// checkReceipt checks the verified receipt against the backend's usage
// and the announced prices.
func checkReceipt(t *testing.T, c *client.Client, executor string, ans *client.Answer, model string, prompt, completion uint32, fee string, p *pb.Pricing) {
	t.Helper()
	if ans.Receipt == nil {
		t.Fatal("answer without a verified receipt")
	}
	r := ans.Receipt.Receipt
	switch {
	case ans.Usage.GetPromptTokens() != prompt || ans.Usage.GetCompletionTokens() != completion:
		t.Fatalf("usage %v, want the backend's %d prompt and %d completion tokens", ans.Usage, prompt, completion)
	case r.GetPromptTokens() != prompt || r.GetCompletionTokens() != completion:
		t.Fatalf("receipt usage %d/%d, want %d/%d", r.GetPromptTokens(), r.GetCompletionTokens(), prompt, completion)
	case r.GetFeeWei() != fee:
		t.Fatalf("receipt fee %s wei, want %s", r.GetFeeWei(), fee)
	case r.GetInputTokenPriceWei() != lp.CanonicalWei(p.GetInputTokenPriceWei()) ||
		r.GetOutputTokenPriceWei() != lp.CanonicalWei(p.GetOutputTokenPriceWei()) ||
		r.GetMinimumFeeWei() != lp.CanonicalWei(p.GetMinimumFeeWei()):
		t.Fatalf("receipt prices %s/%s/%s, want the announced %v in canonical form", r.GetInputTokenPriceWei(), r.GetOutputTokenPriceWei(), r.GetMinimumFeeWei(), p)
	case r.GetModelId() != model || string(r.GetRequestId()) != string(ans.RequestID) || string(r.GetClientId()) != string(c.Host().ID()):
		t.Fatalf("receipt model %q request %x client %x: not this request's", r.GetModelId(), r.GetRequestId(), r.GetClientId())
	case ans.Executor.String() != executor || string(r.GetOutputSha256()) != string(lp.OutputDigest(ans.Text)):
		t.Fatal("receipt not for this executor's text")
	case r.GetFinishReason() != ans.FinishReason:
		t.Fatalf("receipt finish %q, answer %q", r.GetFinishReason(), ans.FinishReason)
	}
}

func mul(price string, n int64) *big.Int {
	p, _ := new(big.Int).SetString(price, 10)
	return p.Mul(p, big.NewInt(n))
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// groupsOf reports whether chunks are tokens grouped in order: each chunk
// the concatenation of one or more consecutive whole tokens.
func groupsOf(chunks, tokens []string) bool {
	i := 0
	for _, c := range chunks {
		if i == len(tokens) {
			return false
		}
		for c != "" && i < len(tokens) && strings.HasPrefix(c, tokens[i]) {
			c = c[len(tokens[i]):]
			i++
		}
		if c != "" {
			return false
		}
	}
	return i == len(tokens)
}
