package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// maxPages bounds paging through one validator's answer.
const maxPages = 100

// Call sends one query to validator i and returns its answer; an error
// code in the answer becomes an error matching the protocol sentinel. An
// unreachable validator is retried until the timeout.
func (c *Client) Call(ctx context.Context, i int, q *pb.QueryRequest) (*pb.QueryResponse, error) {
	return c.call(ctx, i, q, nil)
}

func (c *Client) call(ctx context.Context, i int, q *pb.QueryRequest, giveUp <-chan struct{}) (*pb.QueryResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	id, err := c.resolve(ctx, i, giveUp)
	if err != nil {
		return nil, err
	}
	q.Network = c.cfg.Network
	if q.GetQueryId() == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		q.QueryId = binary.LittleEndian.Uint64(b[:])
	}
	req, err := proto.Marshal(q)
	if err != nil {
		return nil, err
	}
	// A validator holds its 4290 until this client could be served again,
	// so asking again at once is right; the pause covers one that answers
	// 4290 at once. The timeout still bounds the whole.
	pause := rateLimitPause
	for {
		t0 := time.Now()
		resp, err := c.exchange(ctx, id, q.GetQueryId(), req)
		c.meters.queried(q, time.Since(t0))
		if !errors.Is(err, lp.ErrRateLimited) {
			return resp, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, err
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}

// rateLimitPause is the first pause after a 4290.
const rateLimitPause = 20 * time.Millisecond

// exchange sends one marshaled query to the validator id and decodes its
// answer.
func (c *Client) exchange(ctx context.Context, id peer.ID, queryID uint64, req []byte) (*pb.QueryResponse, error) {
	b, err := node.Call(ctx, c.h, id, lp.QueryProtocol, req, lp.MaxResponseSize, c.cfg.Timeout)
	if err != nil {
		return nil, notValidator(err)
	}
	var resp pb.QueryResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return nil, lp.Errorf(lp.ErrMalformed.Code, "response does not decode: %v", err)
	}
	if err := lp.ErrorFromResponse(resp.GetErrorCode(), resp.GetErrorMessage()); err != nil {
		return &resp, err
	}
	if resp.GetQueryId() != queryID {
		return nil, lp.Errorf(lp.ErrMalformed.Code, "response answers query %d, not %d", resp.GetQueryId(), queryID)
	}
	return &resp, nil
}

// unreachableGrace is how long, once one validator has answered, the
// client keeps trying to reach the others.
const unreachableGrace = time.Second

// query is one validator's query function within each.
type query func(ctx context.Context, i int, q *pb.QueryRequest) (*pb.QueryResponse, error)

// each runs f for every validator at once and collects the failures. An
// unreachable validator is retried until the timeout, but no longer than
// unreachableGrace after another one has answered.
func (c *Client) each(ctx context.Context, f func(ctx context.Context, i int, call query) error) []ValidatorError {
	all := make([]int, len(c.cfg.Validators))
	for i := range all {
		all[i] = i
	}
	return c.eachOf(ctx, all, f)
}

// eachOf is each for the validators of the given indexes.
func (c *Client) eachOf(ctx context.Context, validators []int, f func(ctx context.Context, i int, call query) error) []ValidatorError {
	var (
		mu       sync.Mutex
		failures []ValidatorError
		workers  sync.WaitGroup
		once     sync.Once
	)
	answered := make(chan struct{}) // closed by the first answer
	giveUp := make(chan struct{})   // closed unreachableGrace later
	finished := make(chan struct{}) // closed when every validator is done
	grace := make(chan struct{})
	go func() {
		defer close(grace)
		select {
		case <-answered:
		case <-finished:
			return
		}
		t := time.NewTimer(unreachableGrace)
		defer t.Stop()
		select {
		case <-t.C:
			close(giveUp)
		case <-finished:
		}
	}()
	for _, i := range validators {
		workers.Go(func() {
			call := func(ctx context.Context, i int, q *pb.QueryRequest) (*pb.QueryResponse, error) {
				resp, err := c.call(ctx, i, q, giveUp)
				if err == nil {
					once.Do(func() { close(answered) })
				}
				return resp, err
			}
			if err := f(ctx, i, call); err != nil {
				mu.Lock()
				failures = append(failures, ValidatorError{Validator: c.cfg.Validators[i].Raw, Err: err})
				mu.Unlock()
			}
		})
	}
	workers.Wait()
	close(finished)
	<-grace
	return failures
}

// allFailed turns "no validator answered" into one error.
func (c *Client) allFailed(failures []ValidatorError) error {
	if len(failures) < len(c.cfg.Validators) {
		return nil
	}
	if len(failures) == 1 {
		return fmt.Errorf("%w: %v", ErrNoValidators, failures[0])
	}
	return fmt.Errorf("%w (%d asked; first: %v)", ErrNoValidators, len(failures), failures[0])
}

// FindModel asks every validator which executors serve model, verifies
// them, and returns them merged, least loaded first.
func (c *Client) FindModel(ctx context.Context, model string, filters *pb.QueryFilters) (*ModelResult, error) {
	return c.findExecutors(ctx, model, filters, lp.MaxQueryLimit, maxPages)
}

// CandidatePage is how many executors FindCandidates asks each validator
// for.
const CandidatePage = 32

// FindCandidates is FindModel for one request: only each validator's
// CandidatePage least-loaded executors (one page), which is all a choice
// between the two least loaded and a few fallbacks need, at a fraction of
// the cost of every executor's envelope.
func (c *Client) FindCandidates(ctx context.Context, model string, filters *pb.QueryFilters) (*ModelResult, error) {
	return c.findExecutors(ctx, model, filters, CandidatePage, 1)
}

func (c *Client) findExecutors(ctx context.Context, model string, filters *pb.QueryFilters, limit uint32, pages int) (*ModelResult, error) {
	if !lp.ValidModelID(model) {
		return nil, fmt.Errorf("model id %q is not valid: want 1-128 characters of [A-Za-z0-9._:/@-]", model)
	}
	m := newMerger()
	failures := c.each(ctx, c.findModel(model, filters, m, limit, pages))
	if err := c.allFailed(failures); err != nil {
		return nil, err
	}
	return &ModelResult{ModelID: model, Executors: m.executors(model), Failures: failures, Rejected: m.rejections()}, nil
}

// findModel returns the function of each that pages through one
// validator's executors of model into m, at most pages pages of limit.
func (c *Client) findModel(model string, filters *pb.QueryFilters, m *merger, limit uint32, pages int) func(ctx context.Context, i int, call query) error {
	return func(ctx context.Context, i int, call query) error {
		var offset uint32
		for range pages {
			resp, err := call(ctx, i, &pb.QueryRequest{
				Query:   &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: model}},
				Filters: filters,
				Limit:   limit,
				Offset:  offset,
			})
			if err != nil {
				return err
			}
			entries := resp.GetExecutors().GetExecutors()
			for _, e := range entries {
				m.add(model, e, c.cfg.Validators[i].Raw)
			}
			offset += uint32(len(entries))
			if len(entries) == 0 || offset >= resp.GetTotalCount() {
				return nil
			}
		}
		return nil
	}
}

// Stats asks every validator for its statistics.
func (c *Client) Stats(ctx context.Context) (*StatsResult, error) {
	var (
		mu  sync.Mutex
		out StatsResult
	)
	out.Failures = c.each(ctx, func(ctx context.Context, i int, call query) error {
		resp, err := call(ctx, i, &pb.QueryRequest{Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}})
		if err != nil {
			return err
		}
		mu.Lock()
		out.Validators = append(out.Validators, ValidatorStats{Validator: c.cfg.Validators[i].Raw, Stats: resp.GetStatistics()})
		mu.Unlock()
		return nil
	})
	if err := c.allFailed(out.Failures); err != nil {
		return nil, err
	}
	sortStats(out.Validators)
	return &out, nil
}
