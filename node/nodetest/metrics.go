package nodetest

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/metrics"
	"github.com/lloom/lloom/pkg/metrics/metricstest"
)

// ServeMetrics makes a node's registry and serves it on loopback, as
// --metrics-listen does; the server stops in t.Cleanup. It returns the
// registry, for the node's Config, and the URL of its /metrics.
func ServeMetrics(t testing.TB, role string) (*prometheus.Registry, string) {
	t.Helper()
	reg := metrics.NewRegistry(role, "test")
	srv, err := metrics.Listen("127.0.0.1:0", reg, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return reg, "http://" + srv.Addr() + "/metrics"
}

// Scrape GETs a /metrics URL, failing the test if it does not answer.
func Scrape(t testing.TB, url string) metricstest.Families {
	t.Helper()
	fams, err := metricstest.Scrape(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// FeedAgrees scrapes url between two equal readings of v's feed figures
// and compares them with the lloom_watch_ metrics.
func FeedAgrees(t testing.TB, v *validator.Validator, url string) (validator.FeedStats, error) {
	before := v.Feed()
	f := Scrape(t, url)
	after := v.Feed()
	if before != after {
		return after, fmt.Errorf("the feed's figures changed during the scrape")
	}
	sum := func(name string, labels map[string]string) float64 { n, _ := f.Sum(name, labels); return n }
	for _, c := range []struct {
		what   string
		metric float64
		stat   uint64
	}{
		{"subscribers", sum("lloom_watch_subscribers", nil), uint64(after.Subscribers)},
		{"subscriptions", sum("lloom_watch_subscriptions_total", nil), after.Served},
		{"events", sum("lloom_watch_events_total", nil), after.Events},
		{"cut off", sum("lloom_watch_cutoffs_total", nil), after.Cut},
		{"cut off behind", sum("lloom_watch_cutoffs_total", map[string]string{"reason": "behind"}), after.CutBehind},
	} {
		if c.metric != float64(c.stat) {
			return after, fmt.Errorf("feed %s: the metrics say %v, Feed() %d", c.what, c.metric, c.stat)
		}
	}
	return after, nil
}
