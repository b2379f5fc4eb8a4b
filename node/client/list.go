package client

import (
	"cmp"
	"context"
	"slices"
	"sync"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// ListModels asks every validator which models exist: one summary per
// model (executors counted by status, the best load), no executors, so it
// is cheap at any size of network. Models come by id.
func (c *Client) ListModels(ctx context.Context, filters *pb.QueryFilters) (*SummariesResult, error) {
	var (
		mu     sync.Mutex
		byID   = map[string]*ModelSummary{}
		listed = map[string][]int{} // model id -> validators that listed it
	)
	failures := c.each(ctx, func(ctx context.Context, i int, call query) error {
		var offset uint32
		for range maxPages {
			resp, err := call(ctx, i, &pb.QueryRequest{
				Query:   &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}},
				Filters: filters,
				Limit:   lp.MaxQueryLimit,
				Offset:  offset,
			})
			if err != nil {
				return err
			}
			ms := resp.GetModels().GetModels()
			mu.Lock()
			for _, s := range ms {
				if !lp.ValidModelID(s.GetModelId()) {
					continue
				}
				listed[s.GetModelId()] = append(listed[s.GetModelId()], i)
				if old := byID[s.GetModelId()]; old == nil || fuller(s, old) {
					byID[s.GetModelId()] = summaryOf(s)
				}
			}
			mu.Unlock()
			offset += uint32(len(ms))
			if len(ms) == 0 || offset >= resp.GetTotalCount() {
				return nil
			}
		}
		return nil
	})
	if err := c.allFailed(failures); err != nil {
		return nil, err
	}
	out := &SummariesResult{Failures: failures}
	for id, s := range byID {
		vs := listed[id]
		slices.Sort(vs)
		for _, i := range vs {
			s.Validators = append(s.Validators, c.cfg.Validators[i].Raw)
		}
		out.Models = append(out.Models, s)
	}
	slices.SortFunc(out.Models, func(a, b *ModelSummary) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// fuller reports whether summary s counts more executors than the one
// kept, then more healthy ones.
func fuller(s *pb.ModelSummary, kept *ModelSummary) bool {
	if n := int(s.GetExecutorCount()); n != kept.Executors {
		return n > kept.Executors
	}
	return int(s.GetHealthyCount()) > kept.Healthy
}

func summaryOf(s *pb.ModelSummary) *ModelSummary {
	b := s.GetBestLoad()
	return &ModelSummary{
		ID:           s.GetModelId(),
		Executors:    int(s.GetExecutorCount()),
		Healthy:      int(s.GetHealthyCount()),
		Overloaded:   int(s.GetOverloadedCount()),
		Stale:        int(s.GetStaleCount()),
		BestActive:   b.GetActive(),
		BestQueued:   b.GetQueued(),
		BestCapacity: b.GetCapacity(),
	}
}

// findConcurrency bounds the find-model queries ListModelsWithExecutors
// has in flight.
const findConcurrency = 4

// ListModelsWithExecutors lists the models (ListModels), then asks the
// validators that listed each model for its executors (FindModel's
// query), verifies them and returns them merged: every model by id with its
// executors least loaded first. It costs a find-model per model and
// validator, every executor's envelope once per model it serves: for
// people and scripts that want the whole picture, not for polling.
func (c *Client) ListModelsWithExecutors(ctx context.Context, filters *pb.QueryFilters) (*ModelsResult, error) {
	sums, err := c.ListModels(ctx, filters)
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	for i, v := range c.cfg.Validators {
		index[v.Raw] = i
	}
	m := newMerger()
	var (
		mu       sync.Mutex
		failures = slices.Clone(sums.Failures)
		failed   = map[string]bool{}
		workers  sync.WaitGroup
		sem      = make(chan struct{}, findConcurrency)
	)
	for _, f := range failures {
		failed[f.Validator] = true
	}
	for _, s := range sums.Models {
		var vs []int
		for _, raw := range s.Validators {
			vs = append(vs, index[raw])
		}
		sem <- struct{}{}
		workers.Go(func() {
			defer func() { <-sem }()
			fs := c.eachOf(ctx, vs, c.findModel(s.ID, filters, m, lp.MaxQueryLimit, maxPages))
			mu.Lock()
			defer mu.Unlock()
			for _, f := range fs {
				// One failure per validator is enough to say it.
				if !failed[f.Validator] {
					failed[f.Validator] = true
					failures = append(failures, f)
				}
			}
		})
	}
	workers.Wait()
	if err := c.allFailed(failures); err != nil {
		return nil, err
	}
	out := &ModelsResult{Failures: failures, Rejected: m.rejections()}
	for _, id := range m.models() {
		out.Models = append(out.Models, &Model{ID: id, Executors: m.executors(id)})
	}
	return out, nil
}
