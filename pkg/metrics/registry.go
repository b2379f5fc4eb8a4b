package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric lloom defines.
const Namespace = "lloom"

// NewRegistry returns a node's registry, holding the Go runtime's and the
// process's collectors and lloom_build_info{role, version}. go-libp2p's
// metrics join it when the registry reaches the host (node.HostConfig).
func NewRegistry(role, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace:   Namespace,
			Name:        "build_info",
			Help:        "Always 1; its labels name the role this process runs and its version.",
			ConstLabels: prometheus.Labels{"role": role, "version": version},
		}, func() float64 { return 1 }),
	)
	return reg
}

// Histogram buckets, in seconds.
var (
	// QueryBuckets: a validator answers in well under a millisecond to a
	// few seconds for a list of a large registry; a client's round trip
	// adds the network.
	QueryBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// TTFTBuckets: an answer's first token comes after the queue and the
	// prompt's processing, up to the first-chunk timeout of two minutes.
	TTFTBuckets = []float64{.05, .1, .25, .5, 1, 2, 4, 8, 15, 30, 60, 120}
	// LagBuckets: a heartbeat crosses the mesh in milliseconds; seconds
	// mean a slow mesh or a skewed clock, and past two minutes it is
	// ignored as expired.
	LagBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
)
