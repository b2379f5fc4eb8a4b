package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	lp "github.com/lloom/lloom/protocol"
)

// DefaultStreamTimeout bounds one request/response exchange.
const DefaultStreamTimeout = 10 * time.Second

// Call sends one request frame to p over pid and returns the response frame,
// at most maxResp bytes. The exchange ends by ctx or timeout, whichever is
// first.
func Call(ctx context.Context, h host.Host, p peer.ID, pid protocol.ID, req []byte, maxResp int, timeout time.Duration) ([]byte, error) {
	if timeout <= 0 {
		timeout = DefaultStreamTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, pid)
	if err != nil {
		return nil, fmt.Errorf("open %s stream to %s: %w", pid, p, err)
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	if err := s.SetDeadline(dl); err != nil {
		s.Reset()
		return nil, err
	}
	// A stream that ctx cancels must not sit until its deadline.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := lp.WriteFrame(s, req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("send %s request to %s: %w", pid, p, err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, err
	}
	resp, err := lp.ReadFrame(s, maxResp)
	if err != nil {
		s.Reset()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s from %s: %w", pid, p, lp.ErrTimeout)
		}
		return nil, fmt.Errorf("read %s response from %s: %w", pid, p, err)
	}
	return resp, nil
}

// Handler answers one request frame with one response frame. A non-nil
// error resets the stream instead of answering.
type Handler func(ctx context.Context, from peer.ID, req []byte, readErr error) (resp []byte, err error)

// Serve registers a stream handler that reads one request of at most
// maxReq bytes within timeout, passes it (or the read error, so that the
// handler can answer a malformed request with an error code) to handle,
// and writes its answer.
func Serve(h host.Host, pid protocol.ID, maxReq int, timeout time.Duration, handle Handler) {
	h.SetStreamHandler(pid, func(s network.Stream) {
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		dl, _ := ctx.Deadline()
		if err := s.SetDeadline(dl); err != nil {
			s.Reset()
			return
		}
		req, readErr := lp.ReadFrame(s, maxReq)
		if readErr != nil {
			// Leave time to answer a request that could not be read.
			ctx, cancel = context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			dl, _ = ctx.Deadline()
			_ = s.SetDeadline(dl)
		}
		resp, err := handle(ctx, s.Conn().RemotePeer(), req, readErr)
		if err != nil {
			s.Reset()
			return
		}
		if err := lp.WriteFrame(s, resp); err != nil {
			s.Reset()
			return
		}
		_ = s.CloseWrite()
	})
}
