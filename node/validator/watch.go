package validator

import (
	"bufio"
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"google.golang.org/protobuf/proto"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// watchServer serves /lloom/watch/1.0.0: one WatchRequest, then the
// snapshot or the resumption, then one frame per change for as long as the
// subscriber reads (docs/PROTOCOL.md, "Change feed").
type watchServer struct {
	v      *Validator
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the streams being served

	mu     sync.Mutex
	closed bool // guarded by mu
}

func newWatchServer(v *Validator) *watchServer {
	ctx, cancel := context.WithCancel(context.Background())
	return &watchServer{v: v, ctx: ctx, cancel: cancel}
}

// close ends every stream and waits for their handlers.
func (w *watchServer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
}

// requestTimeout bounds reading the WatchRequest.
const requestTimeout = 10 * time.Second

func (w *watchServer) serve(s network.Stream) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		s.Reset()
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	defer w.wg.Done()

	out := bufio.NewWriterSize(s, 16<<10)
	var req pb.WatchRequest
	_ = s.SetReadDeadline(time.Now().Add(requestTimeout))
	err := lp.ReadMessage(s, lp.MaxRequestSize, &req)
	if err == nil {
		err = checkWatch(&req, w.v.cfg.Network)
	}
	if err != nil {
		if lp.CodeOf(err) == lp.ErrInternal.Code {
			err = lp.Errorf(lp.ErrMalformed.Code, "request not read: %v", err)
		}
		w.end(s, out, errorEvent(0, err))
		return
	}
	leave, err := w.v.feed.join(string(s.Conn().RemotePeer()))
	if err != nil {
		w.end(s, out, errorEvent(0, err))
		return
	}
	defer leave()

	// The subscriber keeps its side open: end of stream, a reset or any
	// byte means it has gone (a half-close would hide a later reset).
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	_ = s.SetReadDeadline(time.Time{})
	go func() {
		var b [1]byte
		_, _ = s.Read(b[:])
		cancel()
	}()

	now := w.v.cfg.Now()
	sub, snapshot, resumed := subscribe(w.v.reg, view{model: req.GetModelId(), unverified: req.GetIncludeUnverified()}, req.GetAfterVersion(), now)
	first := snapshotEvents(sub.version, snapshot, now)
	if resumed {
		first = []*pb.WatchEvent{{Version: sub.version, Kind: pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED, AtMs: now.UnixMilli()}}
	}
	if w.write(s, out, first) != nil {
		s.Reset()
		return
	}
	for {
		evs, wake, err := sub.poll(w.v.cfg.Now())
		switch {
		case err != nil:
			w.v.feed.cutOff(cutBehind)
			w.v.log.Debug().Stringer("peer", s.Conn().RemotePeer()).Err(err).Msg("Watch subscriber cut off: it fell behind the change history")
			w.end(s, out, errorEvent(sub.version, errTooSlow(w.v.cfg.Registry.History)))
			return
		case len(evs) > 0:
			if w.write(s, out, evs) != nil {
				w.v.feed.cutOff(cutWriting)
				s.Reset()
				return
			}
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			if w.ctx.Err() != nil { // the validator is closing
				w.end(s, out, errorEvent(sub.version, lp.Errorf(lp.ErrInternal.Code, "the validator is shutting down")))
			} else {
				s.Reset()
			}
			return
		}
	}
}

// checkWatch checks a request's fields.
func checkWatch(req *pb.WatchRequest, network string) error {
	if m := req.GetModelId(); m != "" && !lp.ValidModelID(m) {
		return lp.Errorf(lp.ErrMalformed.Code, "model id %q: want 1-128 characters of [A-Za-z0-9._:/@-]", m)
	}
	if n := req.GetNetwork(); n != "" && n != network {
		return lp.Errorf(lp.ErrWrongNetwork.Code, "this validator serves network %q, not %q", network, n)
	}
	return nil
}

// write sends evs, each one frame, within watchWriteTimeout.
func (w *watchServer) write(s network.Stream, out *bufio.Writer, evs []*pb.WatchEvent) error {
	_ = s.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
	var buf []byte
	for _, ev := range evs {
		var err error
		if buf, err = frame(buf[:0], ev); err != nil {
			return err
		}
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	w.v.feed.sent(len(evs))
	return nil
}

// end sends a last frame, then closes the stream.
func (w *watchServer) end(s network.Stream, out *bufio.Writer, ev *pb.WatchEvent) {
	if w.write(s, out, []*pb.WatchEvent{ev}) != nil {
		s.Reset()
		return
	}
	_ = s.CloseWrite()
	_ = s.Close()
}

// frame appends ev, length-prefixed, to buf. An event too large for a
// frame (an entry budget raised past it) goes without the executor's
// addresses and features.
func frame(buf []byte, ev *pb.WatchEvent) ([]byte, error) {
	if proto.Size(ev) > lp.MaxWatchEventSize && ev.GetExecutor() != nil {
		x := proto.Clone(ev.GetExecutor()).(*pb.WatchedExecutor)
		x.Addrs = nil
		for _, m := range x.GetModels() {
			m.Features = nil
		}
		ev = proto.Clone(ev).(*pb.WatchEvent)
		ev.Executor = x
	}
	n := proto.Size(ev)
	buf = binary.AppendUvarint(buf, uint64(n))
	return proto.MarshalOptions{}.MarshalAppend(buf, ev)
}
