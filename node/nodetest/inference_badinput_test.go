package nodetest_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Each bad request, sent by hand on a raw stream, gets its code, and
// none changes anything: the backend is never called, no slot is taken,
// nothing is announced, and a good request is still answered. Where
// several codes apply, the first of DESIGN §8's order wins.
func TestBadRequestsGetTheirCode(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"))
	v, _ := StartValidator(t, nil)
	m1 := Model("m1", 2)
	m1.Pricing.MinimumFeeWei = "10"
	e := startServing(t, v, fake, []*pb.ModelDescriptor{m1, Model("down", 2)}, func(c *executor.Config) {
		c.InferenceRate = 1 // bursts of 2; each case below comes from a new peer
		c.RequestTimeout = 300 * time.Millisecond
		c.Serving = map[string]executor.ModelServing{"down": {BackendURL: closedURL(t)}}
	})
	Eventually(t, "model without a backend announced unavailable", seesAvailable(v, e.ID(), "down", false))
	seq := e.AnnouncementSeq()

	bad := func(f func(r *pb.InferenceRequest)) []byte { return frame(t, request(f)) }
	tests := []struct {
		name string
		raw  []byte
		want pb.ErrorCode
	}{
		{"oversize length prefix", binary.AppendUvarint(nil, lp.MaxInferenceRequestSize+1), lp.ErrMalformed.Code},
		{"malformed bytes", append(binary.AppendUvarint(nil, 4), 0x0a, 0x05, 'a', 'b'), lp.ErrMalformed.Code},
		{"both messages and prompt", bad(func(r *pb.InferenceRequest) { r.Prompt = "and a prompt" }), lp.ErrInvalidRequest.Code},
		{"neither messages nor prompt", bad(func(r *pb.InferenceRequest) { r.Messages = nil }), lp.ErrInvalidRequest.Code},
		{"max_tokens 0", bad(func(r *pb.InferenceRequest) { r.MaxTokens = uint32p(0) }), lp.ErrInvalidRequest.Code},
		{"max_tokens above the context", bad(func(r *pb.InferenceRequest) { r.MaxTokens = uint32p(m1.GetMaxContextLength() + 1) }), lp.ErrInvalidRequest.Code},
		{"temperature 3", bad(func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(3) }), lp.ErrInvalidRequest.Code},
		{"model not served", bad(func(r *pb.InferenceRequest) { r.ModelId = "other" }), lp.ErrModelNotServed.Code},
		{"input price limit below", bad(func(r *pb.InferenceRequest) { r.MaxInputPriceWei = "999" }), lp.ErrPriceTooHigh.Code},
		{"output price limit below", bad(func(r *pb.InferenceRequest) { r.MaxOutputPriceWei = "1999" }), lp.ErrPriceTooHigh.Code},
		{"fee limit below the minimum fee", bad(func(r *pb.InferenceRequest) { r.MaxFeeWei = "9" }), lp.ErrPriceTooHigh.Code},
		{"wrong network", bad(func(r *pb.InferenceRequest) { r.Network = "other" }), lp.ErrWrongNetwork.Code},
		{"backend unavailable", bad(func(r *pb.InferenceRequest) { r.ModelId = "down" }), lp.ErrBackendFailed.Code},
		// Precedence: 3002, 4290, 3004, 6004, 6001, 6005, 6003, 6002.
		{"wrong network before invalid", bad(func(r *pb.InferenceRequest) { r.Network, r.Temperature = "other", proto.Float64(3) }), lp.ErrWrongNetwork.Code},
		{"invalid before not served", bad(func(r *pb.InferenceRequest) { r.ModelId, r.MaxTokens = "other", uint32p(0) }), lp.ErrInvalidRequest.Code},
		{"invalid for the model before price", bad(func(r *pb.InferenceRequest) {
			r.MaxTokens, r.MaxInputPriceWei = uint32p(m1.GetMaxContextLength()+1), "1"
		}), lp.ErrInvalidRequest.Code},
		{"not served before price", bad(func(r *pb.InferenceRequest) { r.ModelId, r.MaxInputPriceWei = "other", "1" }), lp.ErrModelNotServed.Code},
		{"price before backend", bad(func(r *pb.InferenceRequest) { r.ModelId, r.MaxOutputPriceWei = "down", "1" }), lp.ErrPriceTooHigh.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openRaw(t, rawHost(t), e.ID(), e.Host())
			if _, err := s.Write(tt.raw); err != nil {
				t.Fatal(err)
			}
			if f := readError(t, s); f.GetCode() != tt.want {
				t.Fatalf("got %v %q, want %v", f.GetCode(), f.GetMessage(), tt.want)
			}
		})
	}

	t.Run("flood from one peer", func(t *testing.T) {
		h := rawHost(t)
		send := func(raw []byte) *pb.InferenceError {
			s := openRaw(t, h, e.ID(), e.Host())
			if _, err := s.Write(raw); err != nil {
				t.Fatal(err)
			}
			return readError(t, s)
		}
		notServed := bad(func(r *pb.InferenceRequest) { r.ModelId = "other" })
		for i := range 2 { // the burst
			if f := send(notServed); f.GetCode() != lp.ErrModelNotServed.Code {
				t.Fatalf("request %d within the burst: %v, want 6001", i, f.GetCode())
			}
		}
		f := send(notServed)
		if f.GetCode() != lp.ErrRateLimited.Code || f.GetRetryAfterMs() == 0 {
			t.Fatalf("request past the burst: %v retry %d ms, want 4290 with a retry hint", f.GetCode(), f.GetRetryAfterMs())
		}
		if f := send(bad(func(r *pb.InferenceRequest) { r.Network = "other" })); f.GetCode() != lp.ErrRateLimited.Code {
			t.Fatalf("wrong network past the burst: %v, want 4290 first", f.GetCode())
		}
		if f := send(append(binary.AppendUvarint(nil, 4), 0x0a, 0x05, 'a', 'b')); f.GetCode() != lp.ErrMalformed.Code {
			t.Fatalf("malformed past the burst: %v, want 3002 first", f.GetCode())
		}
	})

	t.Run("stream that never writes", func(t *testing.T) {
		s := openRaw(t, rawHost(t), e.ID(), e.Host())
		if f := readError(t, s); f.GetCode() != lp.ErrTimeout.Code {
			t.Fatalf("got %v %q, want 4002 after the request deadline", f.GetCode(), f.GetMessage())
		}
	})

	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("bad requests reached the backend %d times", n)
	}
	if err := idle(e, "m1")(); err != nil {
		t.Fatal(err)
	}
	if e.AnnouncementSeq() != seq {
		t.Fatal("bad requests changed the announcement")
	}
	h := rawHost(t)
	s := openRaw(t, h, e.ID(), e.Host())
	if _, err := s.Write(frame(t, request(nil))); err != nil {
		t.Fatal(err)
	}
	if f := readLast(t, s); f.GetDone() == nil {
		t.Fatalf("good request after the bad ones: last frame %v, want done", f)
	}
	Eventually(t, "executor frees the streams", noOpenStreams(e.Host(), h.ID()))
}

// A client that stops reading meets the per-frame write deadline: the
// executor resets the stream and cancels the backend call.
func TestClientThatNeverReads(t *testing.T) {
	// 8 MiB in all: beyond what the executor queues (256 KiB), the stream's
	// window and the sockets' buffers together, so the backend must wait.
	big := make([]string, 512)
	for i := range big {
		big[i] = strings.Repeat("x", 16<<10)
	}
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithTokens(big...))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, func(c *executor.Config) {
		c.WriteTimeout = 300 * time.Millisecond
	})
	s := openRaw(t, rawHost(t), e.ID(), e.Host())
	if _, err := s.Write(frame(t, request(nil))); err != nil {
		t.Fatal(err)
	}
	fake.WaitCancelled(t, 1, hangGuard)
	EventuallyWithin(t, hangGuard, "slot freed", idle(e, "m1"))
}

// request is a valid chat request for m1, changed by f.
func request(f func(*pb.InferenceRequest)) *pb.InferenceRequest {
	r := &pb.InferenceRequest{RequestId: make([]byte, lp.RequestIDSize), ModelId: "m1",
		Messages: []*pb.ChatMessage{{Role: "user", Content: "hi"}}}
	_, _ = rand.Read(r.RequestId)
	if f != nil {
		f(r)
	}
	return r
}

// frame is m in the wire's framing.
func frame(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// openRaw opens an inference stream from h to the executor.
func openRaw(t *testing.T, h host.Host, id peer.ID, eh host.Host) lpnet.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: eh.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, id, lp.InferenceProtocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return s
}

// readLast reads frames to the last; the executor must then end the stream.
func readLast(t *testing.T, s lpnet.Stream) *pb.InferenceResponse {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(Timeout))
	br := bufio.NewReader(s)
	for {
		var f pb.InferenceResponse
		if err := lp.ReadMessage(br, lp.MaxInferenceFrameSize, &f); err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		if f.GetChunk() != nil {
			continue
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last frame: %v, want the end of the stream", err)
		}
		_ = s.Close()
		return &f
	}
}

// readError reads the one frame a refused request gets: an error.
func readError(t *testing.T, s lpnet.Stream) *pb.InferenceError {
	t.Helper()
	f := readLast(t, s)
	if f.GetError() == nil {
		t.Fatalf("frame %v, want an error", f)
	}
	return f.GetError()
}

// closedURL is a backend URL where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/v1"
}
