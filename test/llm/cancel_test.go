//go:build llm

package llm

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lloom/lloom/node/nodetest"
)

// longAnswer is a max_tokens the engine takes several seconds to produce
// (about 4,000 tokens/s; the engine caps num_predict at 10 × its 2,048
// context, 20,480).
const longAnswer = 20000

// TestCancellationReachesTheEngine: a client that cancels a long answer
// after its first chunk gets context.Canceled and the partial text at once,
// without a receipt; the executor frees the slot (capacity 1, so a leaked
// slot would block every later request); the engine's handler returns long
// before the full answer would have been produced (its HTTP log shows the
// duration), so the generation was aborted; and the engine serves the
// next request.
func TestCancellationReachesTheEngine(t *testing.T) {
	const cancels = 5
	n := startNet(t, 1, nil)
	full := time.Duration(longAnswer / tokensPerSecond(t, n.eng, 1000) * float64(time.Second))
	from := len(engineLog(t, n.eng))

	var worstReturn, worstFreed time.Duration
	for i := range cancels {
		ctx, cancel := context.WithCancel(context.Background())
		var cancelled time.Time
		req := chatRequest(n.model, fmt.Sprintf("Go on forever (%d).", i))
		req.MaxTokens = ptr(uint32(longAnswer))
		ans, r, err := n.infer(ctx, req, func() {
			if cancelled.IsZero() {
				cancelled = time.Now()
				cancel()
			}
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled request: error %v, want context.Canceled", err)
		}
		worstReturn = max(worstReturn, time.Since(cancelled))
		if ans == nil || ans.Text == "" || ans.Text != r.text() || ans.Receipt != nil {
			t.Fatalf("cancelled request: answer %+v; want the partial text and no receipt", ans)
		}
		nodetest.EventuallyWithin(t, 2*time.Second, "executor slot freed after the cancel", n.idle)
		worstFreed = max(worstFreed, time.Since(cancelled))
	}

	// Every cancelled generation ended at the engine well before a full
	// answer of longAnswer tokens (about `full`) could have been produced.
	for _, g := range waitGin(t, n.eng, from, cancels, "/v1/chat/completions", 5*time.Second) {
		if g.duration >= full/2 {
			t.Errorf("engine request %v: a full answer takes about %v, so it was not aborted", g, full)
		}
	}

	ans, _ := n.mustInfer(t, seeded(chatRequest(n.model, "Still there?"), 16))
	if ans.Usage.GetCompletionTokens() != 16 {
		t.Errorf("after the cancels: %d tokens, want 16", ans.Usage.GetCompletionTokens())
	}
	t.Logf("%d cancels: Infer returned within %v of the cancel, slot freed within %v (a full answer takes about %v)",
		cancels, worstReturn, worstFreed, full.Round(time.Millisecond))
}
