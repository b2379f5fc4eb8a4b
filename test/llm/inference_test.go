//go:build llm

package llm

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/protocol/pb"
	"github.com/lloom/lloom/tools/testmodel"
)

// TestAnswersAreTheEngines: a seeded, greedy request through lloom
// delivers exactly the text the engine produces for the same request sent
// to it directly, with the engine's token counts, for chat (with and
// without a system message) and completion.
func TestAnswersAreTheEngines(t *testing.T) {
	n := startNet(t, 4, nil)
	chatWithSystem := chatRequest(n.model, "Why is the sky blue?")
	chatWithSystem.Messages = append([]*pb.ChatMessage{{Role: "system", Content: "Be brief."}}, chatWithSystem.Messages...)
	for _, tc := range []struct {
		name string
		req  client.Request
	}{
		{"chat", chatRequest(n.model, "Tell me a story.")},
		{"chat with system", chatWithSystem},
		{"completion", completionRequest(n.model, "Once upon a time")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := seeded(tc.req, 32)
			ans, _ := n.mustInfer(t, req)
			want := direct(t, n.eng, req)
			if ans.Text != want.text {
				t.Errorf("lloom delivered %q\nthe engine produces %q", ans.Text, want.text)
			}
			if ans.FinishReason != "length" || want.finish != "length" {
				t.Errorf("finish_reason %q through lloom, %q direct; want length (the model never stops by itself)", ans.FinishReason, want.finish)
			}
			if ans.Usage.GetPromptTokens() != want.promptTokens || ans.Usage.GetCompletionTokens() != want.completionTokens {
				t.Errorf("usage %d+%d through lloom, %d+%d direct", ans.Usage.GetPromptTokens(),
					ans.Usage.GetCompletionTokens(), want.promptTokens, want.completionTokens)
			}
		})
	}
}

// TestMaxTokensCounted: the answer has exactly max_tokens tokens, counted
// in the usage and the receipt, ending with "length"; with no max_tokens
// the executor sends none and the engine's own limit applies.
func TestMaxTokensCounted(t *testing.T) {
	n := startNet(t, 4, nil)
	for _, max := range []uint32{1, 7, 100, 0} {
		req := chatRequest(n.model, "Count the tokens.")
		req.Seed = ptr(int64(1)) // sampled at the engine's default temperature
		// No max_tokens: the executor sends none, the model's num_predict applies.
		want := uint32(testmodel.DefaultNumPredict)
		if max > 0 {
			req.MaxTokens, want = ptr(max), max
		}
		ans, r := n.mustInfer(t, req)
		if got := ans.Usage.GetCompletionTokens(); got != want || ans.FinishReason != "length" {
			t.Errorf("max_tokens %d: %d completion tokens, finish %q; want %d and length", max, got, ans.FinishReason, want)
		}
		if len(r.chunks) == 0 || len(r.chunks) > int(want) {
			t.Errorf("max_tokens %d: %d chunks for %d tokens", max, len(r.chunks), want)
		}
	}
}

// TestStopHonoured: a word the model emitted in a seeded answer, given as
// the stop string of the identical request, ends that answer just before
// the word, with finish_reason "stop".
func TestStopHonoured(t *testing.T) {
	n := startNet(t, 4, nil)
	for _, base := range []client.Request{
		chatRequest(n.model, "Say something, then stop."),
		completionRequest(n.model, "Say something, then stop."),
	} {
		first, _ := n.mustInfer(t, seeded(base, 24))
		words := strings.Fields(first.Text)
		var stop string
		var cut int
		for _, w := range words[2:] { // a word with some text before it
			if i := strings.Index(first.Text, w); i > len(words[0]) {
				stop, cut = w, i
				break
			}
		}
		if stop == "" {
			t.Fatalf("no usable stop word in %q", first.Text)
		}
		req := seeded(base, 24)
		req.Stop = []string{stop}
		ans, _ := n.mustInfer(t, req)
		want := first.Text[:cut]
		if strings.TrimRight(ans.Text, " ") != strings.TrimRight(want, " ") || strings.Contains(ans.Text, stop) {
			t.Errorf("stop %q: got %q, want the text before it: %q", stop, ans.Text, want)
		}
		if ans.FinishReason != "stop" || ans.Receipt.Receipt.GetFinishReason() != "stop" {
			t.Errorf("stop %q: finish_reason %q (receipt %q), want stop", stop, ans.FinishReason, ans.Receipt.Receipt.GetFinishReason())
		}
		if got := ans.Usage.GetCompletionTokens(); got == 0 || got >= first.Usage.GetCompletionTokens() {
			t.Errorf("stop %q: %d completion tokens, want fewer than the %d without it", stop, got, first.Usage.GetCompletionTokens())
		}
	}
}

// TestSamplingParametersReachTheEngine: seed, temperature and top_p
// change the answer, and each answer through lloom is the one the engine
// gives directly for the same parameters; a seeded, greedy answer is the
// same twice.
func TestSamplingParametersReachTheEngine(t *testing.T) {
	n := startNet(t, 4, nil)
	base := chatRequest(n.model, "Pick some words at random.")
	base.MaxTokens = ptr(uint32(24))
	with := func(seed int64, temp, topP float64) client.Request {
		r := base
		r.Seed, r.Temperature, r.TopP = ptr(seed), ptr(temp), ptr(topP)
		return r
	}
	cases := []struct {
		name string
		req  client.Request
	}{
		{"seed 42, temperature 0", with(42, 0, 1)},
		{"seed 42, temperature 1", with(42, 1, 1)},
		{"seed 43, temperature 1", with(43, 1, 1)},
		{"seed 42, temperature 1, top_p 0.05", with(42, 1, 0.05)},
	}
	texts := map[string]string{}
	for _, tc := range cases {
		ans, _ := n.mustInfer(t, tc.req)
		if want := direct(t, n.eng, tc.req); ans.Text != want.text {
			t.Errorf("%s: lloom delivered %q, the engine gives %q", tc.name, ans.Text, want.text)
		}
		texts[tc.name] = ans.Text
	}
	again, _ := n.mustInfer(t, cases[0].req)
	if again.Text != texts[cases[0].name] {
		t.Errorf("seed 42, temperature 0 gave %q, then %q", texts[cases[0].name], again.Text)
	}
	for _, pair := range [][2]int{{0, 1}, {1, 2}, {1, 3}} {
		a, b := cases[pair[0]].name, cases[pair[1]].name
		if texts[a] == texts[b] {
			t.Errorf("%q and %q gave the same answer %q: the parameter did not reach the engine", a, b, texts[a])
		}
	}
}

// TestStreamingIsIncremental: a long answer arrives in many chunks, the
// first long before the last.
func TestStreamingIsIncremental(t *testing.T) {
	n := startNet(t, 4, nil)
	const tokens = 2000 // about half a second at the engine
	// Sampled, not greedy: greedy decoding of the test model falls into a
	// loop that the engine cuts (TestEngineCutsAGreedyLoop).
	req := chatRequest(n.model, "Write at length.")
	req.MaxTokens, req.Seed, req.Temperature = ptr(uint32(tokens)), ptr(int64(7)), ptr(1.0)
	ans, r := n.mustInfer(t, req)
	if ans.Usage.GetCompletionTokens() != tokens {
		t.Fatalf("%d tokens, want %d", ans.Usage.GetCompletionTokens(), tokens)
	}
	if len(r.chunks) < 2 {
		t.Fatalf("the answer arrived in %d chunk(s), want it streamed", len(r.chunks))
	}
	first, last := r.at[0].Sub(r.start), r.at[len(r.at)-1].Sub(r.start)
	if first >= last/2 {
		t.Errorf("first chunk after %v, last after %v: the answer was not streamed as it was produced", first, last)
	}
	if ans.TTFT <= 0 || ans.TTFT >= ans.Duration/2 {
		t.Errorf("TTFT %v of %v", ans.TTFT, ans.Duration)
	}
	t.Logf("%d tokens in %d chunks: first after %v, last after %v", tokens, len(r.chunks), first, last)
}

// TestConcurrentRequests: more requests than the capacity at once all
// complete (the rest queue), each with its own verified receipt, and the
// executor's load returns to zero.
func TestConcurrentRequests(t *testing.T) {
	const capacity, requests, tokens = 2, 4, 200 // queue = capacity
	n := startNet(t, capacity, nil)
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	ids := make(chan string, requests)
	for i := range requests {
		wg.Go(func() {
			req := chatRequest(n.model, "Request number "+strings.Repeat("I", i+1))
			req.MaxTokens, req.Seed, req.Temperature = ptr(uint32(tokens)), ptr(int64(i)), ptr(1.0)
			ans, err := n.c.Infer(t.Context(), req, nil)
			if err == nil && ans.Usage.GetCompletionTokens() != tokens {
				err = fmt.Errorf("%d tokens, want %d", ans.Usage.GetCompletionTokens(), tokens)
			}
			if err == nil {
				ids <- string(ans.RequestID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent request: %v", err)
		}
	}
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != requests {
		t.Errorf("%d distinct receipts for %d requests", len(seen), requests)
	}
	nodetest.Eventually(t, "executor idle", n.idle)
}
