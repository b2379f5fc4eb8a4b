//go:build llm

package llm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
	"github.com/lloom/lloom/test/llm/ollamatest"
)

// inferTimeout bounds one request through lloom in these tests; the
// longest answer asked for (20,000 tokens) takes about 5 s at the engine.
const inferTimeout = time.Minute

// lloomNet is a real engine behind an in-process lloom network: one
// validator, one executor whose backend is the engine, one client.
type lloomNet struct {
	eng   *ollamatest.Engine
	v     *validator.Validator
	x     *executor.Executor
	c     *client.Client
	model string
}

// startNet starts the engine and a network serving its model with the
// given capacity. The backend is probed every second once it fails, so
// that a restarted engine is seen again quickly.
func startNet(t testing.TB, capacity uint32, mutate func(*executor.Config)) *lloomNet {
	t.Helper()
	eng := ollamatest.Start(t) // stopped last: its cleanup was registered first
	v, _ := nodetest.StartValidator(t, nil)
	desc := nodetest.Model(eng.Model(), capacity)
	// The context length is left unknown, so that max_tokens 20,000 (an
	// answer of several seconds, to cancel) reaches the engine.
	desc.MaxContextLength = 0
	x, _ := nodetest.StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{desc}, func(c *executor.Config) {
		c.Backend.URL = eng.URL()
		c.Backend.ProbeInterval = time.Second
		if mutate != nil {
			mutate(c)
		}
	})
	nodetest.Eventually(t, "executor registered with the engine's model", nodetest.Registered(v, x.ID(), eng.Model()))
	return &lloomNet{eng: eng, v: v, x: x, c: nodetest.NewClient(t, v), model: eng.Model()}
}

// received is what onText saw of one answer, with arrival times.
type received struct {
	start  time.Time // Infer called
	chunks []string
	at     []time.Time
}

func (r *received) text() string {
	var b bytes.Buffer
	for _, c := range r.chunks {
		b.WriteString(c)
	}
	return b.String()
}

// infer sends req through the network and records the chunks as they
// arrive; onChunk, if not nil, is called after each.
func (n *lloomNet) infer(ctx context.Context, req client.Request, onChunk func()) (*client.Answer, *received, error) {
	ctx, cancel := context.WithTimeout(ctx, inferTimeout)
	defer cancel()
	r := &received{start: time.Now()}
	ans, err := n.c.Infer(ctx, req, func(s string) error {
		r.chunks = append(r.chunks, s)
		r.at = append(r.at, time.Now())
		if onChunk != nil {
			onChunk()
		}
		return nil
	})
	return ans, r, err
}

// mustInfer is infer for a request that must succeed; it checks what
// every complete answer guarantees (checkAnswer).
func (n *lloomNet) mustInfer(t testing.TB, req client.Request) (*client.Answer, *received) {
	t.Helper()
	ans, r, err := n.infer(context.Background(), req, nil)
	if err != nil {
		t.Fatalf("request through lloom failed: %v (answer %+v)\nengine log:\n%s", err, ans, n.eng.LogTail(20))
	}
	n.checkAnswer(t, ans, r)
	return ans, r
}

// checkAnswer checks a complete answer: the streamed text is the answer's
// text, and the receipt (which client.Infer verified: signer, ids, digest,
// fee arithmetic) is this executor's, for this client, with the usage and
// finish reason of the done frame and the announced prices.
func (n *lloomNet) checkAnswer(t testing.TB, ans *client.Answer, r *received) {
	t.Helper()
	if got := r.text(); got != ans.Text {
		t.Errorf("streamed chunks concatenate to %q, the answer says %q", got, ans.Text)
	}
	if ans.Executor != n.x.ID() {
		t.Errorf("answered by %s, want the executor %s", ans.Executor, n.x.ID())
	}
	if ans.Receipt == nil {
		t.Fatalf("complete answer without a receipt: %+v", ans)
	}
	rc := ans.Receipt.Receipt
	if rc.GetPromptTokens() != ans.Usage.GetPromptTokens() || rc.GetCompletionTokens() != ans.Usage.GetCompletionTokens() {
		t.Errorf("receipt usage %d+%d, done frame %d+%d", rc.GetPromptTokens(), rc.GetCompletionTokens(),
			ans.Usage.GetPromptTokens(), ans.Usage.GetCompletionTokens())
	}
	if ans.Usage.GetPromptTokens() == 0 {
		t.Errorf("prompt_tokens 0: the engine reports usage, the executor must pass it on")
	}
	if rc.GetFinishReason() != ans.FinishReason {
		t.Errorf("receipt finish_reason %q, answer %q", rc.GetFinishReason(), ans.FinishReason)
	}
	if sum := sha256.Sum256([]byte(ans.Text)); !bytes.Equal(rc.GetOutputSha256(), sum[:]) {
		t.Errorf("receipt output_sha256 does not match the text received")
	}
	if !bytes.Equal(rc.GetRequestId(), ans.RequestID) || rc.GetModelId() != n.model {
		t.Errorf("receipt request %x model %q, want %x %q", rc.GetRequestId(), rc.GetModelId(), ans.RequestID, n.model)
	}
	if rc.GetClientId() == nil || string(rc.GetClientId()) != string(n.c.Host().ID()) {
		t.Errorf("receipt client_id is not this client")
	}
	// The prices are the announced ones (nodetest.Model: 1000 and 2000 wei,
	// no minimum fee), and the fee is what they make.
	want := new(big.Int).SetUint64(uint64(rc.GetPromptTokens()) * 1000)
	want.Add(want, new(big.Int).SetUint64(uint64(rc.GetCompletionTokens())*2000))
	if rc.GetInputTokenPriceWei() != "1000" || rc.GetOutputTokenPriceWei() != "2000" || rc.GetFeeWei() != want.String() {
		t.Errorf("receipt prices %s/%s fee %s, want 1000/2000 and fee %s", rc.GetInputTokenPriceWei(),
			rc.GetOutputTokenPriceWei(), rc.GetFeeWei(), want)
	}
}

// available is a condition on the validator's view (what clients are
// told): the executor's model is announced with available = want.
func (n *lloomNet) available(want bool) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := n.c.FindModel(ctx, n.model, &pb.QueryFilters{IncludeUnavailable: true, IncludeStale: true})
		if err != nil {
			return err
		}
		for _, x := range res.Executors {
			if x.PeerID == n.x.ID() {
				if got := x.Model.GetAvailable(); got != want {
					return fmt.Errorf("validator reports the model available=%v", got)
				}
				return nil
			}
		}
		return errors.New("validator does not list the executor")
	}
}

// idle is a condition: the executor has no active or queued request.
func (n *lloomNet) idle() error {
	l := n.x.Load()[n.model]
	if l.Active+l.Queued != 0 {
		return fmt.Errorf("executor load: %d active, %d queued", l.Active, l.Queued)
	}
	return nil
}

func chatRequest(model, content string) client.Request {
	return client.Request{Model: model, Messages: []*pb.ChatMessage{{Role: "user", Content: content}}}
}

func completionRequest(model, prompt string) client.Request {
	return client.Request{Model: model, Prompt: prompt}
}

func ptr[T any](v T) *T { return &v }

// seeded makes req deterministic: seed 42, temperature 0.
func seeded(req client.Request, maxTokens uint32) client.Request {
	req.MaxTokens, req.Seed, req.Temperature = ptr(maxTokens), ptr(int64(42)), ptr(0.0)
	req.Stop = slices.Clone(req.Stop)
	return req
}
