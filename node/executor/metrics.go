package executor

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lloom/lloom/pkg/metrics"
	"github.com/lloom/lloom/pkg/slots"
	lp "github.com/lloom/lloom/protocol"
)

// meters are the executor's metrics: the inference metrics of the
// requests it serves (pkg/metrics.Inference), and each model's load, read
// from its gate at scrape time. nil when metrics are off.
type meters struct {
	inference *metrics.Inference
}

func newMeters(reg prometheus.Registerer, c *catalog) (*meters, error) {
	if reg == nil {
		return nil, nil
	}
	inf, err := metrics.NewInference(reg, "served")
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	if err := reg.Register(loadCollector{c, inf.Models}); err != nil {
		return nil, fmt.Errorf("executor: metrics: %w", err)
	}
	return &meters{inference: inf}, nil
}

// served records one inference stream answered (or refused) after it
// ended.
func (m *meters) served(a *answer, started time.Time) {
	if m == nil {
		return
	}
	o := metrics.Outcome{Model: a.model, Known: a.served, Result: a.result}
	if o.Result == "" {
		// Ended without a verdict of its own: the client stopped reading
		// or went away.
		o.Result = metrics.ResultCanceled
	}
	if !a.first.IsZero() {
		o.TTFT = a.first.Sub(started)
	}
	if a.usage != nil {
		o.PromptTokens, o.CompletionTokens = a.usage.GetPromptTokens(), a.usage.GetCompletionTokens()
	}
	m.inference.Observe(o)
}

var descLoad = prometheus.NewDesc(metrics.Namespace+"_executor_load",
	"Each served model's requests by state: active (running), queued (waiting for a slot), capacity (slots) and queue_limit (waiting room). Models past the label cap are summed under \"other\".",
	[]string{"model", "state"}, nil)

// loadCollector reads every model's gate at scrape time.
type loadCollector struct {
	c      *catalog
	models *metrics.ModelLabels
}

func (loadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descLoad }

func (l loadCollector) Collect(ch chan<- prometheus.Metric) {
	byLabel := map[string]slots.Load{}
	for id, ld := range l.c.loads() {
		label := l.models.Label(id)
		sum := byLabel[label]
		sum.Active += ld.Active
		sum.Queued += ld.Queued
		sum.Capacity += ld.Capacity
		sum.Queue += ld.Queue
		byLabel[label] = sum
	}
	for label, ld := range byLabel {
		for _, s := range []struct {
			state string
			n     uint32
		}{{"active", ld.Active}, {"queued", ld.Queued}, {"capacity", ld.Capacity}, {"queue_limit", ld.Queue}} {
			ch <- prometheus.MustNewConstMetric(descLoad, prometheus.GaugeValue, float64(s.n), label, s.state)
		}
	}
}

// servedModel reports whether an admission error still names a model this
// executor serves (so that the request's model may be a label).
func servedModel(err error) bool { return lp.CodeOf(err) != lp.ErrModelNotServed.Code }
