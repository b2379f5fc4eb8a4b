package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Result label values of outcomes that carry no wire code.
const (
	// ResultCanceled: the asking side went away (or cancelled) before the
	// answer ended.
	ResultCanceled = "canceled"
	// ResultError: a failure with no wire code (a stream cut, a dial).
	ResultError = "error"
)

// Inference holds the metrics of inference requests, the same on
// executors (requests served) and clients and gateways (requests made):
//
//	lloom_inference_requests_total{model, result}
//	lloom_inference_ttft_seconds{model}
//	lloom_inference_tokens_total{model, direction}
//
// A nil *Inference records nothing.
type Inference struct {
	// Models labels the model ids; a role may label other metrics with
	// it too (an executor's load), so that they share its cap.
	Models   *ModelLabels
	requests *prometheus.CounterVec
	ttft     *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
}

// NewInference registers the inference metrics with reg; nil reg returns
// nil (metrics off). role says, in the help texts, which side counts.
func NewInference(reg prometheus.Registerer, role string) (*Inference, error) {
	if reg == nil {
		return nil, nil
	}
	m := &Inference{
		Models: NewModelLabels(DefaultMaxModels),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "inference_requests_total",
			Help:      fmt.Sprintf("Inference requests %s, by model (capped: %q beyond %d models, and for unknown ones) and result (ok, a wire code's name, canceled, …).", role, Other, DefaultMaxModels),
		}, []string{"model", "result"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "inference_ttft_seconds",
			Help:      fmt.Sprintf("Time to the first token of answers %s, queue included, by model.", role),
			Buckets:   TTFTBuckets,
		}, []string{"model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "inference_tokens_total",
			Help:      fmt.Sprintf("Tokens of complete answers %s, by model and direction (prompt, completion), as their usage reports them.", role),
		}, []string{"model", "direction"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.ttft, m.tokens} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

// Outcome is how one inference request ended.
type Outcome struct {
	// Model is the request's model id; Known says whether it may have a
	// label of its own (the executor serves it; the client found
	// executors announcing it). An unknown one counts as "other", so that
	// requests naming made-up ids take no label.
	Model string
	Known bool
	// Result is the result label (Result of a wire code, or ResultX).
	Result string
	// TTFT is the time to the first token; 0 when none came.
	TTFT time.Duration
	// Tokens of a complete answer, from its usage.
	PromptTokens, CompletionTokens uint32
}

// Observe records one request. An inference request is heavy enough that
// the label lookups it costs do not matter.
func (m *Inference) Observe(o Outcome) {
	if m == nil {
		return
	}
	model := Other
	if o.Known {
		model = m.Models.Label(o.Model)
	}
	m.requests.WithLabelValues(model, o.Result).Inc()
	if o.TTFT > 0 {
		m.ttft.WithLabelValues(model).Observe(o.TTFT.Seconds())
	}
	if o.PromptTokens > 0 {
		m.tokens.WithLabelValues(model, "prompt").Add(float64(o.PromptTokens))
	}
	if o.CompletionTokens > 0 {
		m.tokens.WithLabelValues(model, "completion").Add(float64(o.CompletionTokens))
	}
}
