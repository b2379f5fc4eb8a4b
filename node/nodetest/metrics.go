package nodetest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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
