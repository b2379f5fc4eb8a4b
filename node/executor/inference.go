package executor

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/pkg/metrics"
	"github.com/lloom/lloom/pkg/slots"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// overloadedRetry is the retry hint of a full queue. The stream deadlines
// of DESIGN §8 are Config.RequestTimeout and Config.WriteTimeout.
const overloadedRetry = time.Second

// Why an answer stops early.
var (
	errClientGone = errors.New("client went away")
	errShutdown   = errors.New("executor shutting down")
)

// serveInference answers one /lloom/inference/1.0.0 stream.
func (e *Executor) serveInference(s network.Stream) {
	started := time.Now()
	from := s.Conn().RemotePeer()
	log := e.cfg.Logger.With().Str("client", from.String()).Logger()
	a := &answer{s: s, log: &log, writeTimeout: e.cfg.WriteTimeout}
	defer e.meters.served(a, started)
	if !e.startServing() {
		a.stop(errShutdown)
		return
	}
	defer e.serving.Done()

	req, err := e.readRequest(s, from, started)
	if err != nil {
		a.fail(err, 0)
		return
	}
	log = log.With().Str("model", req.GetModelId()).Hex("request", req.GetRequestId()).Logger()
	r, err := e.admit(req)
	a.model, a.served = req.GetModelId(), servedModel(err)
	if err != nil {
		a.fail(err, 0)
		return
	}

	ctx, cancel := context.WithCancelCause(e.serveCtx)
	defer cancel(nil)
	// One read stays pending until the last frame: end of stream, a reset
	// or any byte means the client has gone.
	go func() {
		var b [1]byte
		_, _ = s.Read(b[:])
		cancel(errClientGone)
	}()
	stopWatch := e.clients.Watch(from, func(err error) {
		cancel(fmt.Errorf("%w: %v", errClientGone, err))
	})
	defer stopWatch()

	qctx, qcancel := context.WithTimeout(ctx, e.cfg.QueueWait)
	release, err := r.gate.Acquire(qctx)
	qcancel()
	switch {
	case errors.Is(err, slots.ErrFull):
		a.fail(lp.Errorf(lp.ErrOverloaded.Code, "model %q: %d requests running and %d waiting", req.GetModelId(), r.gate.Load().Active, r.gate.Load().Queued), overloadedRetry)
		return
	case err != nil && ctx.Err() == nil:
		a.fail(lp.Errorf(lp.ErrOverloaded.Code, "model %q: no slot within %s", req.GetModelId(), e.cfg.QueueWait), overloadedRetry)
		return
	case err != nil:
		a.stop(context.Cause(ctx))
		return
	}
	defer release()

	digest := sha256.New()
	p, stopPump := newPump(ctx, a, digest)
	defer stopPump()
	res, err := r.client.Stream(ctx, backendRequest(req, r.name), p.add)
	if perr := p.close(); err == nil && perr != nil && ctx.Err() == nil {
		err = perr // the client stopped reading: a write failed
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		a.stop(context.Cause(ctx))
		return
	case a.writeErr != nil:
		s.Reset()
		log.Debug().Err(a.writeErr).Msg("Answer not delivered; backend call cancelled")
		return
	default:
		code, retry := backendCode(err)
		a.fail(lp.Errorf(code, "%v", err), retry)
		var be *backend.Error
		if errors.As(err, &be) {
			// The slot is held until the backend has been asked, so that
			// an idle executor has settled what the failure meant.
			e.catalog.failed(req.GetModelId(), be)
		}
		return
	}
	usage := &pb.Usage{CompletionTokens: uint32(res.Deltas)}
	if res.Usage != nil {
		usage = &pb.Usage{PromptTokens: res.Usage.PromptTokens, CompletionTokens: res.Usage.CompletionTokens}
	}
	receipt, err := e.receipt(req, r.desc, usage, res.FinishReason, digest, started, s)
	if err != nil {
		a.fail(lp.Errorf(lp.ErrInternal.Code, "receipt not sealed: %v", err), 0)
		return
	}
	if err := a.write(&pb.InferenceResponse{Frame: &pb.InferenceResponse_Done{Done: &pb.InferenceDone{
		FinishReason: res.FinishReason, Usage: usage, Receipt: receipt}}}); err != nil {
		s.Reset()
		return
	}
	a.end()
	a.result, a.usage = metrics.Result(0), usage
	log.Debug().Uint32("prompt_tokens", usage.GetPromptTokens()).Uint32("completion_tokens", usage.GetCompletionTokens()).
		Dur("took", time.Since(started)).Msg("Answered")
}

// readRequest reads and decodes the request frame within the deadline and
// applies the checks that precede the model's: rate, decoding, network and
// the request's own validity, in the contract's order.
func (e *Executor) readRequest(s network.Stream, from interface{ String() string }, now time.Time) (*pb.InferenceRequest, error) {
	_ = s.SetReadDeadline(now.Add(e.cfg.RequestTimeout))
	b, err := lp.ReadFrame(exactReader{s}, lp.MaxInferenceRequestSize)
	_ = s.SetReadDeadline(time.Time{})
	if err != nil {
		if lp.CodeOf(err) == lp.ErrTimeout.Code {
			return nil, lp.Errorf(lp.ErrTimeout.Code, "no request within %s", e.cfg.RequestTimeout)
		}
		if lp.CodeOf(err) != lp.ErrMalformed.Code {
			err = lp.Errorf(lp.ErrMalformed.Code, "request not read: %v", err)
		}
		return nil, err
	}
	req := &pb.InferenceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, lp.Errorf(lp.ErrMalformed.Code, "request does not decode: %v", err)
	}
	if !e.limiter.Allow(s.Conn().RemotePeer(), now) {
		return nil, &rateLimited{lp.Errorf(lp.ErrRateLimited.Code, "more than %v requests per second", e.cfg.InferenceRate),
			e.limiter.RetryAfter(s.Conn().RemotePeer(), time.Now())}
	}
	if n := req.GetNetwork(); n != "" && n != e.cfg.Network {
		return nil, lp.Errorf(lp.ErrWrongNetwork.Code, "this executor serves network %q, not %q", e.cfg.Network, n)
	}
	if err := lp.CheckInferenceRequest(req); err != nil {
		return nil, err
	}
	return req, nil
}

// rateLimited is a 4290 with its retry hint.
type rateLimited struct {
	err   *lp.Error
	retry time.Duration
}

func (r *rateLimited) Error() string { return r.err.Error() }
func (r *rateLimited) Unwrap() error { return r.err }

// admit applies the checks that need the model: served (6001), valid for
// it (6004), within the client's prices (6005), backend reachable (6003).
func (e *Executor) admit(req *pb.InferenceRequest) (route, error) {
	r, ok := e.catalog.route(req.GetModelId())
	if !ok {
		return route{}, lp.Errorf(lp.ErrModelNotServed.Code, "model %q is not served here", req.GetModelId())
	}
	if err := lp.CheckRequestForModel(req, r.desc); err != nil {
		return route{}, err
	}
	if err := lp.CheckPriceLimits(req, r.desc.GetPricing()); err != nil {
		return route{}, err
	}
	switch {
	case r.client == nil:
		return route{}, lp.Errorf(lp.ErrBackendFailed.Code, "this executor runs announce-only: no backend configured")
	case r.downWhy != "":
		return route{}, lp.Errorf(lp.ErrBackendFailed.Code, "backend unavailable: %s", r.downWhy)
	case !r.desc.GetAvailable():
		return route{}, lp.Errorf(lp.ErrBackendFailed.Code, "model %q is announced unavailable", req.GetModelId())
	}
	return r, nil
}

func backendRequest(req *pb.InferenceRequest, name string) backend.Request {
	br := backend.Request{Model: name, Prompt: req.GetPrompt(), Stop: req.GetStop(),
		MaxTokens: req.MaxTokens, Temperature: req.Temperature, TopP: req.TopP, Seed: req.Seed}
	for _, m := range req.GetMessages() {
		br.Messages = append(br.Messages, backend.Message{Role: m.GetRole(), Content: m.GetContent()})
	}
	return br
}

// backendCode maps a backend failure to its wire code and retry hint.
func backendCode(err error) (pb.ErrorCode, time.Duration) {
	var be *backend.Error
	if !errors.As(err, &be) {
		return lp.ErrBackendFailed.Code, 0
	}
	switch be.Kind {
	case backend.KindOverloaded:
		return lp.ErrOverloaded.Code, max(be.RetryAfter, overloadedRetry)
	case backend.KindNotFound:
		return lp.ErrModelNotServed.Code, 0
	case backend.KindInvalid:
		return lp.ErrInvalidRequest.Code, 0
	}
	return lp.ErrBackendFailed.Code, 0
}

// answer writes one stream's frames.
type answer struct {
	s            network.Stream
	log          *zerolog.Logger
	writeTimeout time.Duration // per frame
	text         bool          // a chunk has been sent
	writeErr     error         // the first failed write

	// For the metrics (metrics.go): the request's model, whether it is
	// served here, how the answer ended ("" until it did: the client went
	// away), when its first chunk went out, and the usage of a complete
	// one.
	model  string
	served bool
	result string
	first  time.Time
	usage  *pb.Usage
}

func (a *answer) write(m *pb.InferenceResponse) error {
	if a.writeErr != nil {
		return a.writeErr
	}
	_ = a.s.SetWriteDeadline(time.Now().Add(a.writeTimeout))
	if err := lp.WriteMessage(a.s, m); err != nil {
		a.writeErr = err
		return err
	}
	return nil
}

// chunk sends text, split so that no frame exceeds the limit.
func (a *answer) chunk(text string, digest hash.Hash) error {
	for _, piece := range lp.SplitText(text, lp.MaxChunkText) {
		if a.first.IsZero() {
			a.first = time.Now()
		}
		if err := a.write(&pb.InferenceResponse{Frame: &pb.InferenceResponse_Chunk{Chunk: &pb.InferenceChunk{Text: piece}}}); err != nil {
			return err
		}
		digest.Write([]byte(piece))
		a.text = true
	}
	return nil
}

// end follows the last frame: Close half-closes (the end of stream goes
// out after the frames written; never a reset, which could discard them)
// and frees the stream. Only Close or Reset releases a go-libp2p stream:
// after a bare CloseWrite every answered stream kept counting against the
// client's stream limit until the connection closed.
func (a *answer) end() { _ = a.s.Close() }

// fail ends the answer with an error frame and closes.
func (a *answer) fail(err error, retry time.Duration) {
	var rl *rateLimited
	if errors.As(err, &rl) {
		retry = rl.retry
	}
	f := &pb.InferenceError{Code: lp.CodeOf(err), Message: err.Error()}
	if e := (*lp.Error)(nil); errors.As(err, &e) {
		f.Message = e.Reason // the code travels in its own field
	}
	if c := f.Code; c == lp.ErrOverloaded.Code || c == lp.ErrRateLimited.Code {
		f.RetryAfterMs = uint32(max(retry, time.Millisecond).Milliseconds())
	}
	a.result = metrics.Result(f.Code)
	a.log.Debug().Int32("code", int32(f.Code)).Str("error", f.Message).Bool("after_text", a.text).Msg("Request refused or failed")
	if a.write(&pb.InferenceResponse{Frame: &pb.InferenceResponse_Error{Error: f}}) != nil {
		a.s.Reset()
		return
	}
	a.end()
}

// stop ends an answer cut short: the client has gone (reset, nothing
// more written) or the executor is shutting down (5000).
func (a *answer) stop(cause error) {
	if errors.Is(cause, errShutdown) {
		a.fail(lp.Errorf(lp.ErrInternal.Code, "executor shutting down"), 0)
		return
	}
	a.log.Debug().AnErr("cause", cause).Msg("Client went away; backend call cancelled")
	a.s.Reset()
}

// exactReader reads the request frame without reading ahead: a byte after
// it means the client has gone, and must reach the pending read.
type exactReader struct{ r io.Reader }

func (x exactReader) Read(p []byte) (int, error) { return x.r.Read(p) }

func (x exactReader) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(x.r, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}
