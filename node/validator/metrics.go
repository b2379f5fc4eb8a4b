package validator

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lloom/lloom/pkg/metrics"
	"github.com/lloom/lloom/protocol/pb"
)

// The validator's metrics. Counters and registry figures are read at
// scrape time from what the statistics query reads too (counts.go, the
// registry, the GossipSub tracer), so that the two agree and the message
// path pays nothing for them; only the two histograms are updated as
// things happen, without allocating.

// queryKind is the kind of query answered: an index of
// metrics.QueryKinds, or queryRefused.
type queryKind int

// queryRefused is a query answered with an error before the registry was
// asked: counted in lloom_validator_queries_refused_total.
const queryRefused queryKind = -1

// meters holds the histograms; nil when metrics are off.
type meters struct {
	lag      prometheus.Histogram
	queryVec *prometheus.HistogramVec
	queries  [len(metrics.QueryKinds)]prometheus.Observer // queryVec's, made once
}

func newMeters(reg prometheus.Registerer) *meters {
	if reg == nil {
		return nil
	}
	m := &meters{
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace,
			Name:      "heartbeat_lag_seconds",
			Help:      "Time from a heartbeat's issued_at to its acceptance here (clock skew included; an executor clock ahead counts as 0).",
			Buckets:   metrics.LagBuckets,
		}),
		queryVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace,
			Name:      "query_duration_seconds",
			Help:      "Time to answer a query the registry answered, from its request read to its answer encoded, by kind.",
			Buckets:   metrics.QueryBuckets,
		}, []string{"kind"}),
	}
	for k, name := range metrics.QueryKinds {
		m.queries[k] = m.queryVec.WithLabelValues(name)
	}
	return m
}

// heartbeatLag records the lag of a heartbeat accepted at now.
func (m *meters) heartbeatLag(now time.Time, issuedAtMs int64) {
	if m == nil {
		return
	}
	m.lag.Observe(max(0, float64(now.UnixMilli()-issuedAtMs)/1000))
}

// queryServed records a query the registry answered.
func (m *meters) queryServed(k queryKind, took time.Duration) {
	if m == nil {
		return
	}
	m.queries[k].Observe(took.Seconds())
}

// registerMetrics registers the validator's metrics with reg (nil: off).
func (v *Validator) registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{v.meters.lag, v.meters.queryVec, collector{v}} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("validator: metrics: %w", err)
		}
	}
	return nil
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metrics.Namespace+"_"+name, help, labels, nil)
}

var (
	descMessages = desc("validator_messages_total",
		"Messages judged: accepted (announcements whichever way they came, heartbeats), ignored or rejected (the topic's, by wire code), or dropped by GossipSub before validation (code queue_full or throttled).",
		"kind", "verdict", "code")
	descPulls = desc("pulls_total",
		"Announcement pulls by kind (check: liveness check; pull: asked by a heartbeat; relay: asked of the validator that relayed it) and result.",
		"kind", "result")
	descQueriesRefused = desc("validator_queries_refused_total",
		"Queries answered with an error before the registry was asked (rate limited, malformed, wrong network), by wire code.",
		"code")
	descExecutors = desc("registry_executors",
		"Executors in the registry by status: healthy, overloaded and stale are verified; unverified ones wait for their liveness check.",
		"status")
	descModels         = desc("registry_models", "Distinct model ids served by the registry's executors.")
	descMaxExecutors   = desc("registry_max_executors", "The registry's size limit (--max-executors).")
	descRemoved        = desc("registry_executors_removed_total", "Executors removed: withdrawn (REMOVAL), past the removal timeout, or evicted.")
	descEvicted        = desc("registry_executors_evicted_total", "Executors evicted from a full registry to make room for a verified newcomer.")
	descGossipDropped  = desc("gossip_dropped_total", "What GossipSub dropped besides unvalidated messages: RPCs to a peer whose queue was full, messages no subscriber took.", "reason")
	descPeersThrottled = desc("gossip_peers_throttled_total", "Times GossipSub's peer gater throttled a peer.")

	descWatchSubscribers   = desc("watch_subscribers", "Subscribers of the change feed now, over /lloom/watch/1.0.0 and the HTTP event stream.")
	descWatchSubscriptions = desc("watch_subscriptions_total", "Subscribers admitted to the change feed (those refused past its caps are not counted).")
	descWatchEvents        = desc("watch_events_total", "Change feed events written to subscribers: snapshots (on a stream, one frame per executor), resumptions and changes.")
	descWatchCutoffs       = desc("watch_cutoffs_total", "Subscribers cut off: behind (fell out of the change history; they come back to a fresh snapshot) or write_failed (stopped reading, or went away mid-write).", "reason")
)

// collector reads the validator's counts and its registry's figures at
// scrape time. Reading the registry takes its read lock for one pass over
// the executors, as a statistics query does.
type collector struct{ v *Validator }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descPulls, descQueriesRefused, descExecutors, descModels,
		descMaxExecutors, descRemoved, descEvicted, descGossipDropped, descPeersThrottled,
		descWatchSubscribers, descWatchSubscriptions, descWatchEvents, descWatchCutoffs} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	v := c.v
	counter := func(d *prometheus.Desc, n uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), labels...)
	}
	gauge := func(d *prometheus.Desc, n uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), labels...)
	}
	for k := range numKinds {
		for vd := range numVerdicts {
			for code := range numCodes {
				n := v.msgs.at(k, vd, code).Load()
				// Accepted announcements and heartbeats exist from the
				// start, so that rates are defined; the rest once seen.
				if n == 0 && (vd != verdictAccepted || k == kindUnknown || code != 0) {
					continue
				}
				counter(descMessages, n, kindNames[k], verdictNames[vd], metrics.CodeAt(code))
			}
		}
	}
	d := v.gossip.Tracer.Dropped()
	counter(descMessages, d.ValidationQueueFull, kindNames[kindUnknown], "dropped", "queue_full")
	counter(descMessages, d.ValidationThrottled, kindNames[kindUnknown], "dropped", "throttled")
	counter(descGossipDropped, d.RPCs, "rpc_queue_full")
	counter(descGossipDropped, d.Undeliverable, "undeliverable")
	counter(descPeersThrottled, d.PeersThrottled)
	for k := range numPullKinds {
		for r := range numPullResults {
			counter(descPulls, v.pullStats[k][r].Load(), pullKindNames[k], pullResultNames[r])
		}
	}
	limited := metrics.CodeIndex(pb.ErrorCode_ERROR_CODE_RATE_LIMITED)
	for code := range numCodes {
		// Rate-limited queries exist from the start, for alerts on them.
		if n := v.refused[code].Load(); n > 0 || code == limited {
			counter(descQueriesRefused, n, metrics.CodeAt(code))
		}
	}
	st := v.reg.Stats(v.cfg.Now())
	gauge(descExecutors, st.GetHealthy(), "healthy")
	gauge(descExecutors, st.GetOverloaded(), "overloaded")
	gauge(descExecutors, st.GetStale(), "stale")
	gauge(descExecutors, st.GetUnverified(), "unverified")
	gauge(descModels, st.GetModels())
	gauge(descMaxExecutors, st.GetMaxExecutors())
	counter(descRemoved, st.GetExecutorsRemoved())
	counter(descEvicted, st.GetExecutorsEvicted())
	f := v.Feed()
	gauge(descWatchSubscribers, uint64(f.Subscribers))
	counter(descWatchSubscriptions, f.Served)
	counter(descWatchEvents, f.Events)
	for r := range numCutReasons {
		counter(descWatchCutoffs, v.feed.cut[r].Load(), cutReasonNames[r])
	}
}
