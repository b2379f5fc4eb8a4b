//go:build llm

package llm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/protocol/pb"
)

// TestEngineKilledThenRestarted: with the engine SIGKILLed, the next
// request fails with 6003 (backend failed) from the executor, validators
// then report the model unavailable and clients are not sent there; once
// the engine is back, the executor's probe (every second here) makes the
// model available again within 10 s, without a restart, and a chat
// succeeds.
func TestEngineKilledThenRestarted(t *testing.T) {
	n := startNet(t, 4, nil)
	n.mustInfer(t, seeded(chatRequest(n.model, "Before the crash."), 8))

	n.eng.Kill()
	ans, _, err := n.infer(context.Background(), seeded(chatRequest(n.model, "During the crash."), 8), nil)
	if code := client.CodeOf(err); code != pb.ErrorCode_ERROR_CODE_BACKEND_FAILED {
		t.Fatalf("request with the engine down: %v (code %d), want code 6003", err, code)
	}
	if ans == nil || len(ans.Attempts) != 1 || ans.Attempts[0].Executor != n.x.ID() ||
		ans.Attempts[0].Code != pb.ErrorCode_ERROR_CODE_BACKEND_FAILED || ans.Receipt != nil {
		t.Fatalf("answer %+v: want one attempt, at the executor, with 6003, and no receipt", ans)
	}
	start := time.Now()
	nodetest.EventuallyWithin(t, 5*time.Second, "validator reports the model unavailable", n.available(false))
	seenDown := time.Since(start)
	if _, _, err := n.infer(context.Background(), seeded(chatRequest(n.model, "Still down?"), 8), nil); !errors.Is(err, client.ErrNoExecutor) {
		t.Errorf("request while the model is unavailable: %v, want %v", err, client.ErrNoExecutor)
	}

	start = time.Now()
	n.eng.Restart(t)
	restarted := time.Since(start)
	nodetest.EventuallyWithin(t, 10*time.Second, "validator reports the model available again", n.available(true))
	back := time.Since(start)
	ans, _ = n.mustInfer(t, seeded(chatRequest(n.model, "After the restart."), 8))
	if ans.Usage.GetCompletionTokens() != 8 {
		t.Errorf("after the restart: %d tokens, want 8", ans.Usage.GetCompletionTokens())
	}
	t.Logf("unavailable at the validator %v after the failed request; engine restarted in %v, available again %v after the restart began",
		seenDown.Round(time.Millisecond), restarted.Round(time.Millisecond), back.Round(time.Millisecond))
}

// TestEngineCutsAGreedyLoop pins what a user of Ollama v0.6.5 sees when a
// greedy answer falls into a loop: the engine stops after the same token
// 31 times and ends the stream with neither a finish_reason nor [DONE]
// (llm/server.go, "token repeat limit"). The test model does so at
// temperature 0 within 2,000 tokens. lloom reports it as 6003 after the
// first chunk: the partial text, no receipt, not retried elsewhere; the
// executor frees the slot and the model serves again within seconds.
func TestEngineCutsAGreedyLoop(t *testing.T) {
	n := startNet(t, 4, nil)
	req := seeded(chatRequest(n.model, "Write at length."), 2000)
	want, done := directStream(t, n.eng, req)
	if done || want.finish != "" || want.chunks >= 2000 {
		t.Fatalf("the engine no longer cuts a greedy loop (done %v, finish %q, %d chunks): update this test", done, want.finish, want.chunks)
	}
	ans, r, err := n.infer(context.Background(), req, nil)
	if code := client.CodeOf(err); code != pb.ErrorCode_ERROR_CODE_BACKEND_FAILED {
		t.Fatalf("greedy 2,000-token answer: %v (code %d), want 6003", err, code)
	}
	if ans == nil || ans.Text != want.text || ans.Text != r.text() || ans.Receipt != nil || len(ans.Attempts) != 1 {
		t.Fatalf("answer %+v: want the engine's partial text (%d bytes), no receipt, one attempt", ans, len(want.text))
	}
	nodetest.Eventually(t, "executor idle", n.idle)
	// A cut stream counts as the backend failing (DESIGN §8), so the model
	// may be unavailable until the executor's next probe (every second).
	nodetest.EventuallyWithin(t, 10*time.Second, "a request served again", func() error {
		_, _, err := n.infer(context.Background(), seeded(chatRequest(n.model, "Short, please."), 8), nil)
		return err
	})
}
