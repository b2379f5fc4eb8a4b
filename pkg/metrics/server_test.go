package metrics_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/rs/zerolog"

	"github.com/lloom/lloom/pkg/metrics"
	"github.com/lloom/lloom/pkg/metrics/metricstest"
)

// The server answers GET /metrics with the registry in Prometheus' text
// format, refuses anything that is not a read, and stops listening when
// closed.
func TestServer(t *testing.T) {
	reg := metrics.NewRegistry("test", "v1.2.3")
	inf, err := metrics.NewInference(reg, "made")
	if err != nil {
		t.Fatal(err)
	}
	inf.Observe(metrics.Outcome{Model: "m1", Known: true, Result: "ok", PromptTokens: 3, CompletionTokens: 5})
	srv, err := metrics.Listen("127.0.0.1:0", reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	base := "http://" + srv.Addr()

	fams, err := metricstest.Scrape(context.Background(), base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", "lloom_build_info", "lloom_inference_requests_total"} {
		if !fams.Has(name) {
			t.Errorf("scrape lacks %s", name)
		}
	}
	if v, _ := fams.Sum("lloom_build_info", map[string]string{"role": "test", "version": "v1.2.3"}); v != 1 {
		t.Errorf("lloom_build_info{role=test,version=v1.2.3} = %v, want 1", v)
	}
	if v, _ := fams.Sum("lloom_inference_tokens_total", map[string]string{"model": "m1", "direction": "completion"}); v != 5 {
		t.Errorf("completion tokens of m1 = %v, want 5", v)
	}

	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodHead, "/metrics", http.StatusOK},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Close() // idempotent
	if _, err := metricstest.Scrape(context.Background(), base+"/metrics"); err == nil {
		t.Error("the server still answers after Close")
	}
}

func TestListenRefusesABadAddress(t *testing.T) {
	if s, err := metrics.Listen("not-an-address", metrics.NewRegistry("test", ""), zerolog.Nop()); err == nil {
		s.Close()
		t.Fatal("Listen(not-an-address) succeeded")
	}
}

// lloom's metric names follow Prometheus' conventions (units, _total for
// counters, help texts).
func TestNamesFollowConventions(t *testing.T) {
	reg := metrics.NewRegistry("test", "")
	inf, err := metrics.NewInference(reg, "made")
	if err != nil {
		t.Fatal(err)
	}
	inf.Observe(metrics.Outcome{Model: "m", Known: true, Result: "ok", TTFT: 1, PromptTokens: 1, CompletionTokens: 1})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
