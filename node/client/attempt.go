package client

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// dialTimeout bounds reaching one executor.
const dialTimeout = 10 * time.Second

// attempt is one request sent to one executor.
type attempt struct {
	c       *Client
	x       *Executor
	req     *pb.InferenceRequest
	onText  func(string) error
	timeout time.Duration

	started    bool // a chunk arrived: failures are reported, not retried
	text       strings.Builder
	finish     string
	usage      *pb.Usage
	receipt    *lp.VerifiedReceipt
	retryAfter time.Duration
	ttft       time.Duration
	relayed    bool   // the stream ran over a relay
	punch      string // reach.go: the hole punch's outcome
}

// run sends the request and reads the answer to its last frame.
func (a *attempt) run(ctx context.Context) error {
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Cancelling is resetting (DESIGN §8); closing would be invisible.
	stopReset := context.AfterFunc(ctx, func() { s.Reset() })
	defer stopReset()
	stopWatch := a.c.executors.Watch(a.x.PeerID, func(err error) {
		cancel(fmt.Errorf("executor stopped answering: %w", err))
	})
	defer stopWatch()

	sent := time.Now()
	_ = s.SetWriteDeadline(sent.Add(dialTimeout))
	if err := lp.WriteMessage(s, a.req); err != nil {
		s.Reset() // only Close or Reset frees a stream
		return a.fail(ctx, fmt.Errorf("send request to %s: %w", a.x.PeerID, err))
	}
	_ = s.SetWriteDeadline(time.Time{})
	timeout := a.timeout
	if timeout <= 0 {
		timeout = DefaultFirstChunkTimeout
	}
	first := time.AfterFunc(timeout, func() { cancel(lp.Errorf(lp.ErrTimeout.Code, "no answer from %s within %s", a.x.PeerID, timeout)) })
	defer first.Stop()

	br := bufio.NewReader(s)
	for {
		var resp pb.InferenceResponse
		if err := lp.ReadMessage(br, lp.MaxInferenceFrameSize, &resp); err != nil {
			s.Reset()
			if a.relayed {
				// The relay resets circuits past its data or duration limit.
				return a.fail(ctx, fmt.Errorf("answer from %s cut on a relayed connection (the relay's data or duration limit?): %w", a.x.PeerID, err))
			}
			return a.fail(ctx, fmt.Errorf("answer from %s cut: %w", a.x.PeerID, err))
		}
		first.Stop()
		switch f := resp.GetFrame().(type) {
		case *pb.InferenceResponse_Chunk:
			if !a.started {
				a.started, a.ttft = true, time.Since(sent)
			}
			t := f.Chunk.GetText()
			a.text.WriteString(t)
			if a.onText != nil {
				if err := a.onText(t); err != nil {
					s.Reset()
					return err
				}
			}
		case *pb.InferenceResponse_Error:
			e := f.Error
			a.retryAfter = time.Duration(e.GetRetryAfterMs()) * time.Millisecond
			_ = s.Close()
			return lp.Errorf(e.GetCode(), "executor %s: %s", a.x.PeerID, oneLine(e.GetMessage()))
		case *pb.InferenceResponse_Done:
			_ = s.Close()
			a.finish, a.usage = f.Done.GetFinishReason(), f.Done.GetUsage()
			r, err := lp.VerifyReceipt(f.Done.GetReceipt(), lp.ReceiptClaim{
				Executor: a.x.PeerID, Client: a.c.h.ID(), RequestID: a.req.GetRequestId(), ModelID: a.req.GetModelId(), Text: a.text.String(),
			})
			if err != nil {
				a.started = true // the answer arrived; only its receipt failed
				return fmt.Errorf("%w: executor %s", err, a.x.PeerID)
			}
			if r.Receipt.GetPromptTokens() != a.usage.GetPromptTokens() || r.Receipt.GetCompletionTokens() != a.usage.GetCompletionTokens() {
				a.started = true
				return lp.Errorf(lp.ErrMalformed.Code, "receipt: usage differs from the done frame's (executor %s)", a.x.PeerID)
			}
			a.receipt = r
			return nil
		default:
			s.Reset()
			return lp.Errorf(lp.ErrMalformed.Code, "executor %s sent an empty frame", a.x.PeerID)
		}
	}
}

// fail explains a failed read or write: the cause that ended ctx if any.
func (a *attempt) fail(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return err
}

// open dials the executor at the addresses of its signed announcement and
// opens an inference stream.
func (a *attempt) open(ctx context.Context) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	h := a.c.h
	if h.Network().Connectedness(a.x.PeerID) != network.Connected {
		var addrs []ma.Multiaddr
		for _, s := range a.x.Addrs {
			if m, err := ma.NewMultiaddr(s); err == nil {
				addrs = append(addrs, m)
			}
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%w: %s announced no address to dial", ErrUnreachable, a.x.PeerID)
		}
		h.Peerstore().AddAddrs(a.x.PeerID, addrs, peerstore.TempAddrTTL)
		a.c.punchReady(ctx, addrs) // reach.go: answer the executor's punch
		node.ClearDialBackoff(h, a.x.PeerID)
		if err := h.Connect(ctx, peer.AddrInfo{ID: a.x.PeerID}); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, a.x.PeerID, err)
		}
	}
	a.punch = a.c.upgrade(ctx, a.x.PeerID) // reach.go
	// A relayed connection is limited: the stream may use it (DESIGN §8).
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "inference"), a.x.PeerID, lp.InferenceProtocol)
	if err != nil {
		return nil, fmt.Errorf("%w: inference stream to %s: %w", ErrUnreachable, a.x.PeerID, err)
	}
	a.relayed = s.Conn().Stat().Limited
	return s, nil
}

// oneLine keeps a remote peer's message to one bounded line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
