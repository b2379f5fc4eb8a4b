package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// MaxAttempts is how many executors one request tries before the first
// chunk of an answer (DESIGN §8).
const MaxAttempts = 3

// ErrNoExecutor is returned when no executor serves the model (or none
// passes the filters).
var ErrNoExecutor = errors.New("client: no executor serves the model")

// ErrUnreachable is returned when an executor could not be reached.
var ErrUnreachable = errors.New("client: executor not reachable")

// Request is one inference request.
type Request struct {
	Model string
	// Exactly one of Messages (chat) and Prompt (completion).
	Messages []*pb.ChatMessage
	Prompt   string

	MaxTokens   *uint32
	Temperature *float64
	TopP        *float64
	Stop        []string
	Seed        *int64

	// Price limits in decimal wei; empty means none. The input and output
	// limits also filter the candidates.
	MaxInputPriceWei  string
	MaxOutputPriceWei string
	MaxFeeWei         string
	// Filters narrow the candidates (backend type, context, features).
	Filters *pb.QueryFilters
	// FirstChunkTimeout bounds each attempt until its first frame (queue
	// time at the executor included); 0 means DefaultFirstChunkTimeout.
	FirstChunkTimeout time.Duration
	// OnAttempt, if set, is called before each executor is tried, so that
	// a caller streaming the answer knows whose text onText passes on.
	OnAttempt func(x *Executor)
}

// DefaultFirstChunkTimeout bounds an attempt until the answer starts.
const DefaultFirstChunkTimeout = 2 * time.Minute

// Attempt is one executor tried.
type Attempt struct {
	Executor peer.ID
	Code     pb.ErrorCode // 0 when the attempt produced the answer
	Err      error
	// RetryAfter is the executor's hint with 6002 and 4290.
	RetryAfter time.Duration
}

// Candidate is an executor the client considered, with the reason it was
// skipped, if it was.
type Candidate struct {
	Executor *Executor
	Skipped  string
}

// Answer is a complete, verified answer, or what arrived of a failed one.
type Answer struct {
	Executor     peer.ID
	Text         string
	FinishReason string
	Usage        *pb.Usage
	Receipt      *lp.VerifiedReceipt
	Attempts     []Attempt
	Candidates   []Candidate
	RequestID    []byte
	TTFT         time.Duration // request sent to first chunk (on the answering executor)
	// Connection is "direct" or "relayed": how the answer travelled.
	Connection string
	// Punch is the hole punch's outcome on the answering executor:
	// "not needed" (connected directly), "succeeded", "failed" (the
	// answer went over the relay), or "off".
	Punch    string
	Duration time.Duration // from the call to the last frame
}

// Infer finds the executors serving req.Model, picks one (power of two
// choices between the two least loaded healthy ones), and streams its
// answer to onText as it arrives. A failure before the first chunk moves
// on to the next candidate, up to MaxAttempts; after it, the failure is
// returned with the partial answer. The answer's receipt is verified. ctx
// cancels the request (the executor's backend call with it).
func (c *Client) Infer(ctx context.Context, req Request, onText func(string) error) (*Answer, error) {
	return c.InferVia(ctx, c.FindCandidates, req, onText)
}

// Finder returns the executors that may answer a request for model:
// Client.FindCandidates, or a gateway's answer shared between requests.
type Finder func(ctx context.Context, model string, filters *pb.QueryFilters) (*ModelResult, error)

// InferVia is Infer with the candidates find returns.
func (c *Client) InferVia(ctx context.Context, find Finder, req Request, onText func(string) error) (*Answer, error) {
	start := time.Now()
	filters := &pb.QueryFilters{}
	if req.Filters != nil {
		filters = req.Filters
	}
	filters.MaxInputPriceWei, filters.MaxOutputPriceWei = req.MaxInputPriceWei, req.MaxOutputPriceWei
	found, err := find(ctx, req.Model, filters)
	if err != nil {
		c.meters.inferred(req.Model, false, nil, err)
		return nil, err
	}
	cands, order := Choose(found.Executors, nil)
	ans := &Answer{Candidates: cands}
	if len(order) == 0 {
		err := fmt.Errorf("%w %q (%d seen, none usable)", ErrNoExecutor, req.Model, len(found.Executors))
		c.meters.inferred(req.Model, announces(found.Executors, req.Model), ans, err)
		return ans, err
	}
	return c.InferOn(ctx, order, req, onText, ans, start)
}

// InferOn sends req to the executors in order, as Infer does once it has
// chosen. ans, if not nil, is filled in (candidates already recorded).
func (c *Client) InferOn(ctx context.Context, order []*Executor, req Request, onText func(string) error, ans *Answer, start time.Time) (*Answer, error) {
	ans, err := c.inferOn(ctx, order, req, onText, ans, start)
	c.meters.inferred(req.Model, announces(order, req.Model), ans, err)
	return ans, err
}

func (c *Client) inferOn(ctx context.Context, order []*Executor, req Request, onText func(string) error, ans *Answer, start time.Time) (*Answer, error) {
	if ans == nil {
		ans = &Answer{}
	}
	wire, err := c.wireRequest(req)
	if err != nil {
		return ans, err
	}
	ans.RequestID = wire.GetRequestId()
	var last error
	for _, x := range order[:min(len(order), MaxAttempts)] {
		if req.OnAttempt != nil {
			req.OnAttempt(x)
		}
		a := &attempt{c: c, x: x, req: wire, onText: onText, timeout: req.FirstChunkTimeout}
		err := a.run(ctx)
		c.meters.attempted(err)
		ans.Attempts = append(ans.Attempts, Attempt{Executor: x.PeerID, Code: CodeOf(err), Err: err, RetryAfter: a.retryAfter})
		if a.started || err == nil {
			ans.Executor, ans.Text, ans.FinishReason, ans.Usage, ans.Receipt = x.PeerID, a.text.String(), a.finish, a.usage, a.receipt
			ans.TTFT, ans.Duration = a.ttft, time.Since(start)
			ans.Connection, ans.Punch = connectionKind(a.relayed), a.punch
			return ans, err
		}
		last = err
		if !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	ans.Duration = time.Since(start)
	return ans, last
}

func (c *Client) wireRequest(req Request) (*pb.InferenceRequest, error) {
	id := make([]byte, lp.RequestIDSize)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	w := &pb.InferenceRequest{
		RequestId: id, Network: c.cfg.Network, ModelId: req.Model,
		Messages: req.Messages, Prompt: req.Prompt,
		MaxTokens: req.MaxTokens, Temperature: req.Temperature, TopP: req.TopP, Stop: req.Stop, Seed: req.Seed,
		MaxInputPriceWei: req.MaxInputPriceWei, MaxOutputPriceWei: req.MaxOutputPriceWei, MaxFeeWei: req.MaxFeeWei,
		IssuedAtMs: time.Now().UnixMilli(),
	}
	// The executor would refuse it with the same words; no need to ask.
	if err := lp.CheckInferenceRequest(w); err != nil {
		return nil, err
	}
	return w, nil
}

// Choose orders candidates for one request: stale and unavailable ones
// are skipped; healthy ones come before overloaded ones, least loaded
// first, equal loads in random order; and the first is one of the two
// least-loaded healthy ones (overloaded ones when none is healthy) at
// random (power of two choices), so that clients reading the same order do
// not all land on one executor. pick chooses 0 or 1 (nil: at random).
func Choose(execs []*Executor, pick func() int) ([]Candidate, []*Executor) {
	var cands []Candidate
	var healthy, overloaded []*Executor
	for _, x := range execs {
		switch {
		case x.Status == pb.ExecutorStatus_EXECUTOR_STATUS_STALE:
			cands = append(cands, Candidate{x, "stale"})
		case !x.Model.GetAvailable():
			cands = append(cands, Candidate{x, "unavailable"})
		case x.Status == pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED:
			cands = append(cands, Candidate{x, ""})
			overloaded = append(overloaded, x)
		default:
			cands = append(cands, Candidate{x, ""})
			healthy = append(healthy, x)
		}
	}
	// Shuffled, then sorted stably by load alone: executors that look
	// alike come in random order rather than by peer id, which would send
	// every client to the same one (when all are overloaded, and the
	// validators' view lags, that one's queue overflows while others have
	// room).
	for _, xs := range [][]*Executor{healthy, overloaded} {
		mrand.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
		slices.SortStableFunc(xs, byLoad)
	}
	if pick == nil {
		pick = func() int { return mrand.IntN(2) }
	}
	first := healthy
	if len(first) == 0 {
		first = overloaded
	}
	if len(first) >= 2 && pick() == 1 {
		first[0], first[1] = first[1], first[0]
	}
	return cands, append(healthy, overloaded...)
}

// byLoad is compareLoad without its final tie-break by peer id.
func byLoad(a, b *Executor) int {
	stale := pb.ExecutorStatus_EXECUTOR_STATUS_STALE
	if a.Active == b.Active && a.Queued == b.Queued && max(a.Capacity, 1) == max(b.Capacity, 1) && (a.Status == stale) == (b.Status == stale) {
		return 0
	}
	return compareLoad(a, b)
}

// retryable reports whether a failure before the first chunk is the
// executor's (try another) rather than the request's (any would refuse).
func retryable(err error) bool {
	switch CodeOf(err) {
	case lp.ErrInvalidRequest.Code, lp.ErrPriceTooHigh.Code, lp.ErrWrongNetwork.Code, lp.ErrMalformed.Code, lp.ErrRateLimited.Code:
		return false
	}
	return !errors.Is(err, context.Canceled)
}

// CodeOf is the wire code of a failure, 0 for one without (a dial).
func CodeOf(err error) pb.ErrorCode {
	var e *lp.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
