package metrics_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lloom/lloom/pkg/metrics"
)

// Requests naming a thousand models — a network where hostile executors
// announce made-up ids — make at most DefaultMaxModels series per result
// and an "other" one; requests for models nobody announced take no label.
func TestInferenceSeriesAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	inf, err := metrics.NewInference(reg, "made")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		for _, result := range []string{"ok", "overloaded"} {
			inf.Observe(metrics.Outcome{Model: fmt.Sprintf("model-%d", i), Known: true, Result: result,
				TTFT: time.Second, PromptTokens: 1, CompletionTokens: 1})
		}
		inf.Observe(metrics.Outcome{Model: fmt.Sprintf("made-up-%d", i), Result: "no_executor"})
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"lloom_inference_requests_total": 2*(metrics.DefaultMaxModels+1) + 1,
		"lloom_inference_ttft_seconds":   metrics.DefaultMaxModels + 1,
		"lloom_inference_tokens_total":   2 * (metrics.DefaultMaxModels + 1),
	}
	for _, mf := range mfs {
		if n := len(mf.GetMetric()); n != want[mf.GetName()] {
			t.Errorf("%s: %d series, want %d", mf.GetName(), n, want[mf.GetName()])
		}
	}
	var nilInf *metrics.Inference
	nilInf.Observe(metrics.Outcome{Model: "m", Known: true, Result: "ok"}) // metrics off: no panic
}
