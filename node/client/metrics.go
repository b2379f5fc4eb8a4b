package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lloom/lloom/pkg/metrics"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// meters are a client's metrics (a gateway's too): the inference metrics
// of the requests it makes (pkg/metrics.Inference), each attempt on an
// executor, and the round trip of each query to a validator. nil when
// metrics are off.
type meters struct {
	inference *metrics.Inference
	attempts  *prometheus.CounterVec
	queryVec  *prometheus.HistogramVec
	queries   [len(metrics.QueryKinds)]prometheus.Observer // queryVec's, made once
}

func newMeters(reg prometheus.Registerer) (*meters, error) {
	if reg == nil {
		return nil, nil
	}
	inf, err := metrics.NewInference(reg, "made by this client")
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	m := &meters{
		inference: inf,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      "inference_attempts_total",
			Help:      "Executors tried for inference requests, by result: a request moves on to another executor after a failure before its first token.",
		}, []string{"result"}),
		queryVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace,
			Name:      "query_duration_seconds",
			Help:      "Round trip of each query to a validator, errors included, by kind.",
			Buckets:   metrics.QueryBuckets,
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.attempts, m.queryVec} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("client: metrics: %w", err)
		}
	}
	for k, name := range metrics.QueryKinds {
		m.queries[k] = m.queryVec.WithLabelValues(name)
	}
	return m, nil
}

// inferred records one request: known says whether executors announcing
// the model were found (only then may it have a label of its own).
func (m *meters) inferred(model string, known bool, ans *Answer, err error) {
	if m == nil {
		return
	}
	o := metrics.Outcome{Model: model, Known: known, Result: resultOf(err)}
	if ans != nil {
		o.TTFT = ans.TTFT
		if err == nil {
			o.PromptTokens, o.CompletionTokens = ans.Usage.GetPromptTokens(), ans.Usage.GetCompletionTokens()
		}
	}
	m.inference.Observe(o)
}

// announces reports whether one of execs announced model (their signed
// announcements were verified): only such a model may take a label.
func announces(execs []*Executor, model string) bool {
	for _, x := range execs {
		if x.Model.GetModelId() == model {
			return true
		}
	}
	return false
}

// attempted records one executor tried.
func (m *meters) attempted(err error) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(resultOf(err)).Inc()
}

// queried records one query exchange with a validator.
func (m *meters) queried(q *pb.QueryRequest, took time.Duration) {
	if m == nil {
		return
	}
	m.queries[metrics.QueryKind(q)].Observe(took.Seconds())
}

// resultOf is the result label of a request's or attempt's error: a wire
// code's name when it carries one (the executor's or validator's, bounded
// to the codes the contract defines), else what the client knows of it.
func resultOf(err error) string {
	var e *lp.Error
	switch {
	case err == nil:
		return metrics.Result(0)
	case errors.Is(err, ErrNoExecutor):
		return "no_executor"
	case errors.Is(err, ErrNoValidators):
		return "no_validator"
	case errors.As(err, &e):
		return metrics.Result(e.Code)
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	case errors.Is(err, context.Canceled):
		return metrics.ResultCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return metrics.Result(lp.ErrTimeout.Code)
	}
	return metrics.ResultError
}
