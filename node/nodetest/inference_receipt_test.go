package nodetest_test

import (
	"bufio"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/client"
	. "github.com/lloom/lloom/node/nodetest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// forger is a hand-made executor: it answers "hello" and a done frame
// whose receipt a test may spoil, or cuts the answer with a reset.
type forger struct {
	key   crypto.PrivKey
	h     host.Host
	spoil func(r *pb.Receipt, done *pb.InferenceDone, key crypto.PrivKey) // nil: an honest receipt
	reset bool                                                            // reset after the chunk
}

const forgedText = "hello"

func newForger(t *testing.T) *forger {
	t.Helper()
	f := &forger{key: Key(t)}
	h, err := node.NewHost(node.HostConfig{Key: f.key, Listen: Loopback(), UserAgent: "nodetest-forger"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	f.h = h
	h.SetStreamHandler(lp.InferenceProtocol, f.serve)
	return f
}

func (f *forger) serve(s lpnet.Stream) {
	var req pb.InferenceRequest
	if err := lp.ReadMessage(bufio.NewReader(s), lp.MaxInferenceRequestSize, &req); err != nil {
		s.Reset()
		return
	}
	_ = lp.WriteMessage(s, &pb.InferenceResponse{Frame: &pb.InferenceResponse_Chunk{Chunk: &pb.InferenceChunk{Text: forgedText}}})
	if f.reset {
		s.Reset()
		return
	}
	r := &pb.Receipt{
		RequestId: req.GetRequestId(), ExecutorId: []byte(f.h.ID()), ClientId: []byte(s.Conn().RemotePeer()),
		ModelId: req.GetModelId(), PromptTokens: 1, CompletionTokens: 1,
		InputTokenPriceWei: "3", OutputTokenPriceWei: "5", MinimumFeeWei: "0", FeeWei: "8",
		StartedAtMs: time.Now().UnixMilli(), FinishedAtMs: time.Now().UnixMilli(),
		OutputSha256: lp.OutputDigest(forgedText), FinishReason: "stop",
	}
	done := &pb.InferenceDone{FinishReason: "stop", Usage: &pb.Usage{PromptTokens: 1, CompletionTokens: 1}}
	key := f.key
	if f.spoil != nil {
		f.spoil(r, done, key)
	}
	if done.Receipt == nil {
		env, err := lp.SealReceipt(r, key)
		if err != nil {
			s.Reset()
			return
		}
		done.Receipt = env
	}
	_ = lp.WriteMessage(s, &pb.InferenceResponse{Frame: &pb.InferenceResponse_Done{Done: done}})
	_ = s.Close()
}

func (f *forger) executor() *client.Executor {
	var addrs []string
	for _, a := range f.h.Addrs() {
		addrs = append(addrs, a.String())
	}
	return &client.Executor{PeerID: f.h.ID(), Addrs: addrs}
}

// The client accepts an honest receipt and refuses every other: for
// another text, request, client or signer, with a fee its own fields do
// not make, with usage other than the done frame's, a broken signature, or
// none. A refused receipt fails the answer (reported with its text, not
// retried elsewhere).
func TestClientVerifiesReceipts(t *testing.T) {
	v, _ := StartValidator(t, nil)
	c := NewClient(t, v)
	other := Key(t)
	otherID, _ := peer.IDFromPrivateKey(other)
	tests := []struct {
		name  string
		spoil func(r *pb.Receipt, done *pb.InferenceDone, key crypto.PrivKey)
	}{
		{"tampered text", func(r *pb.Receipt, _ *pb.InferenceDone, _ crypto.PrivKey) { r.OutputSha256 = lp.OutputDigest("hellO") }},
		{"another request", func(r *pb.Receipt, _ *pb.InferenceDone, _ crypto.PrivKey) { r.RequestId = make([]byte, 16) }},
		{"another client", func(r *pb.Receipt, _ *pb.InferenceDone, _ crypto.PrivKey) { r.ClientId = []byte(otherID) }},
		{"another model", func(r *pb.Receipt, _ *pb.InferenceDone, _ crypto.PrivKey) { r.ModelId = "m2" }},
		{"signed by another executor", func(r *pb.Receipt, done *pb.InferenceDone, _ crypto.PrivKey) {
			r.ExecutorId = []byte(otherID)
			done.Receipt, _ = lp.SealReceipt(r, other)
		}},
		{"fee not from its fields", func(r *pb.Receipt, _ *pb.InferenceDone, _ crypto.PrivKey) { r.FeeWei = "9" }},
		{"usage unlike the done frame's", func(_ *pb.Receipt, done *pb.InferenceDone, _ crypto.PrivKey) { done.Usage.CompletionTokens = 2 }},
		{"broken signature", func(r *pb.Receipt, done *pb.InferenceDone, key crypto.PrivKey) {
			done.Receipt, _ = lp.SealReceipt(r, key)
			done.Receipt[len(done.Receipt)-1] ^= 1
		}},
		{"no receipt", func(_ *pb.Receipt, done *pb.InferenceDone, _ crypto.PrivKey) { done.Receipt = []byte{} }},
	}
	f := newForger(t)
	ask := func() (*client.Answer, error) {
		return c.InferOn(context.Background(), []*client.Executor{f.executor(), f.executor()}, chatRequest("m1", "hi"), nil, nil, time.Now())
	}
	ans, err := ask()
	if err != nil || ans.Receipt == nil || ans.Text != forgedText {
		t.Fatalf("honest receipt refused: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.spoil = tt.spoil
			ans, err := ask()
			if err == nil || ans.Receipt != nil {
				t.Fatalf("receipt accepted (%v)", ans.Receipt)
			}
			if !errors.Is(err, lp.ErrMalformed) && !errors.Is(err, lp.ErrInvalidSignature) {
				t.Fatalf("error %v: want a malformed receipt or invalid signature", err)
			}
			if ans.Text != forgedText || len(ans.Attempts) != 1 {
				t.Fatalf("answer %q after %d attempts: want the text received, not retried", ans.Text, len(ans.Attempts))
			}
		})
	}
}

// An answer the executor resets (after a chunk, which the reset may
// discard) fails at once, and the client frees its stream: only Close or
// Reset does, and a stream left open counts against the peer's limit.
func TestClientFreesStreamOfCutAnswer(t *testing.T) {
	v, _ := StartValidator(t, nil)
	c := NewClient(t, v)
	f := newForger(t)
	f.reset = true
	for range 3 {
		ans, err := c.InferOn(context.Background(), []*client.Executor{f.executor()}, chatRequest("m1", "hi"), nil, nil, time.Now())
		if err == nil || ans.Receipt != nil {
			t.Fatalf("cut answer %q: no error", ans.Text)
		}
	}
	Eventually(t, "client frees the streams of cut answers", noOpenStreams(c.Host(), f.h.ID()))
}
