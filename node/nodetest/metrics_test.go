package nodetest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	"github.com/lloom/lloom/pkg/metrics/metricstest"
	"github.com/lloom/lloom/protocol/pb"
)

// What `lloom client stats` shows and what Prometheus scrapes from the
// same validator are the same figures: a validator with an executor, a
// peer that sends a replay and garbage, and a client asking questions;
// then /metrics is scraped over HTTP between two Stats() that agree.
func TestStatisticsAndMetricsAgree(t *testing.T) {
	vreg, vurl := ServeMetrics(t, "validator")
	v, _ := StartValidator(t, func(c *validator.Config) { c.Metrics = vreg })
	ereg, eurl := ServeMetrics(t, "executor")
	e, _ := StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("m1", 2)}, func(c *executor.Config) { c.Metrics = ereg })
	Eventually(t, "executor registered", Registered(v, e.ID(), "m1"))

	peer := NewPeer(t, v)
	now := time.Now()
	peer.Publish(t, mustSeal(t, peer, peer.Announcement(100, now, Model("p1", 1))))
	Eventually(t, "the peer's announcement held", Held(v, peer.ID(), "p1"))
	peer.Publish(t, mustSeal(t, peer, peer.Announcement(50, now, Model("p1", 1)))) // a replay: ignored
	peer.Publish(t, []byte("not a gossip message"))                                // rejected
	if resp, err := queryRaw(peer, v, []byte("\xff\xff not a query")); err != nil || resp.GetErrorCode() != pb.ErrorCode_ERROR_CODE_MALFORMED_MESSAGE {
		t.Fatalf("malformed query: %v, %v", resp, err)
	}
	c := NewClient(t, v)
	ctx := context.Background()
	if _, err := c.Stats(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindModel(ctx, "m1", nil); err != nil {
		t.Fatal(err)
	}

	var st *pb.Statistics
	var fams metricstest.Families
	Eventually(t, "statistics and metrics agree", func() error {
		before := v.Stats()
		fams = Scrape(t, vurl)
		st = v.Stats()
		if !sameCounters(before, st) {
			return fmt.Errorf("the validator's figures changed during the scrape")
		}
		if st.GetHeartbeatsAccepted() == 0 || st.GetMessagesIgnored() == 0 || st.GetMessagesRejected() == 0 {
			return fmt.Errorf("not every kind of message counted yet: %v", st)
		}
		return agree(st, fams)
	})

	// The change feed's figures too, with a subscriber watching.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	synced := make(chan struct{})
	go func() {
		_ = c.Watch(watchCtx, client.WatchOptions{}, func(_ int, ev *pb.WatchEvent) error {
			if ev.GetKind() == pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED {
				close(synced)
			}
			return nil
		})
	}()
	select {
	case <-synced:
	case <-time.After(Timeout):
		t.Fatal("the watch never synced")
	}
	Eventually(t, "the feed's figures and metrics agree", func() error {
		f, err := FeedAgrees(t, v, vurl)
		if err == nil && (f.Subscribers != 1 || f.Events < 2) {
			err = fmt.Errorf("feed figures %+v: want the subscriber and its snapshot (an executor, then SYNCED)", f)
		}
		return err
	})

	if n, _ := fams.Sum("lloom_validator_queries_refused_total", map[string]string{"code": "3002"}); n != 1 {
		t.Errorf("lloom_validator_queries_refused_total{code=3002} = %v, want 1 (the malformed query)", n)
	}
	if n, _ := fams.Sum("lloom_heartbeat_lag_seconds", nil); n != float64(st.GetHeartbeatsAccepted()) {
		t.Errorf("lloom_heartbeat_lag_seconds counts %v heartbeats, want the %d accepted", n, st.GetHeartbeatsAccepted())
	}
	// go-libp2p's own metrics and the Go runtime's are on the same page.
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "libp2p_swarm_connections_opened_total",
		"libp2p_rcmgr_connections", "libp2p_identify_identify_pushes_triggered_total"} {
		if !fams.Has(name) {
			t.Errorf("the validator's scrape lacks %s", name)
		}
	}
	lint(t, "validator", vreg)

	Eventually(t, "the executor's load scraped", func() error {
		f := Scrape(t, eurl)
		if n, ok := f.Sum("lloom_executor_load", map[string]string{"model": "m1", "state": "capacity"}); n != 2 {
			return fmt.Errorf("lloom_executor_load{model=m1,state=capacity} = %v (present %v), want 2", n, ok)
		}
		return nil
	})
	lint(t, "executor", ereg)
}

// sameCounters reports whether two statistics have the same figures
// (uptime aside).
func sameCounters(a, b *pb.Statistics) bool {
	a, b = proto.Clone(a).(*pb.Statistics), proto.Clone(b).(*pb.Statistics)
	a.UptimeSeconds, b.UptimeSeconds = 0, 0
	return proto.Equal(a, b)
}

// agree compares every figure of the statistics with its metric.
func agree(st *pb.Statistics, f metricstest.Families) error {
	sum := func(name string, labels ...string) float64 {
		m := map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			m[labels[i]] = labels[i+1]
		}
		n, _ := f.Sum(name, m)
		return n
	}
	const msgs = "lloom_validator_messages_total"
	for _, c := range []struct {
		what   string
		metric float64
		stat   uint64
	}{
		{"announcements accepted", sum(msgs, "kind", "announcement", "verdict", "accepted"), st.GetAnnouncementsAccepted()},
		{"heartbeats accepted", sum(msgs, "kind", "heartbeat", "verdict", "accepted"), st.GetHeartbeatsAccepted()},
		{"messages ignored", sum(msgs, "verdict", "ignored"), st.GetMessagesIgnored()},
		{"messages rejected", sum(msgs, "verdict", "rejected"), st.GetMessagesRejected()},
		{"messages dropped", sum(msgs, "verdict", "dropped"), st.GetMessagesDropped()},
		{"announcements pulled", sum("lloom_pulls_total", "kind", "pull", "result", "ok") + sum("lloom_pulls_total", "kind", "relay", "result", "ok"), st.GetAnnouncementsPulled()},
		{"queries served", sum("lloom_query_duration_seconds"), st.GetQueriesServed()},
		{"executors", sum("lloom_registry_executors"), st.GetExecutors()},
		{"healthy", sum("lloom_registry_executors", "status", "healthy"), st.GetHealthy()},
		{"overloaded", sum("lloom_registry_executors", "status", "overloaded"), st.GetOverloaded()},
		{"stale", sum("lloom_registry_executors", "status", "stale"), st.GetStale()},
		{"unverified", sum("lloom_registry_executors", "status", "unverified"), st.GetUnverified()},
		{"models", sum("lloom_registry_models"), st.GetModels()},
		{"max executors", sum("lloom_registry_max_executors"), st.GetMaxExecutors()},
		{"executors removed", sum("lloom_registry_executors_removed_total"), st.GetExecutorsRemoved()},
		{"executors evicted", sum("lloom_registry_executors_evicted_total"), st.GetExecutorsEvicted()},
	} {
		if c.metric != float64(c.stat) {
			return fmt.Errorf("%s: the metrics say %v, the statistics %d", c.what, c.metric, c.stat)
		}
	}
	return nil
}

// lint checks lloom's metric names against Prometheus' conventions.
func lint(t *testing.T, role string, g prometheus.Gatherer) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("%s: gather: %v", role, err)
	}
	mfs = slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool { return !strings.HasPrefix(mf.GetName(), "lloom_") })
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s: %s", role, p.Metric, p.Text)
	}
}

// Executors announcing 80 models, and requests for 20 more that nobody
// serves, leave at most 64 model labels (and "other") in a client's
// metrics; an executor asked for a model it does not serve counts it as
// "other". However many ids a hostile network makes up, the series stay
// bounded.
func TestModelLabelsStayBounded(t *testing.T) {
	var ids [2][]string
	var models [2][]*pb.ModelDescriptor
	for i := range 40 {
		for e, prefix := range []string{"a", "b"} {
			id := fmt.Sprintf("%s-%d", prefix, i)
			ids[e] = append(ids[e], id)
			models[e] = append(models[e], Model(id, 4))
		}
	}
	v, _ := StartValidator(t, nil)
	fake := backendtest.New(t, backendtest.WithModels(append(ids[0], ids[1]...)...), backendtest.WithTokens("Hel", "lo"))
	ereg, eurl := ServeMetrics(t, "executor")
	a := startServing(t, v, fake, models[0], func(c *executor.Config) { c.Metrics = ereg })
	startServing(t, v, fake, models[1], nil)

	creg, curl := ServeMetrics(t, "client")
	cfg := client.DefaultConfig()
	cfg.Validators = Bootstraps(t, v)
	cfg.Metrics = creg
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	for _, id := range append(ids[0], ids[1]...) {
		if _, err := c.Infer(ctx, chatRequest(id, "hi"), nil); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	for i := range 20 {
		if _, err := c.Infer(ctx, chatRequest(fmt.Sprintf("made-up-%d", i), "hi"), nil); !errors.Is(err, client.ErrNoExecutor) {
			t.Fatalf("a model nobody serves: %v, want ErrNoExecutor", err)
		}
	}
	x := candidates(t, c, "a-0")[a.ID()]
	for i := range 5 {
		_, err := c.InferOn(ctx, []*client.Executor{x}, chatRequest(fmt.Sprintf("not-served-%d", i), "hi"), nil, nil, time.Now())
		if client.CodeOf(err) != pb.ErrorCode_ERROR_CODE_MODEL_NOT_SERVED {
			t.Fatalf("a model the executor does not serve: %v, want 6001", err)
		}
	}

	const reqs = "lloom_inference_requests_total"
	f := Scrape(t, curl)
	labels := f.LabelValues(reqs, "model")
	if len(labels) != 65 || !labels["other"] {
		t.Errorf("the client labels %d models (other among them: %v), want 64 and other", len(labels), labels["other"])
	}
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{nil, 105},
		{map[string]string{"result": "ok"}, 80},
		{map[string]string{"model": "other", "result": "ok"}, 16},
		{map[string]string{"result": "no_executor", "model": "other"}, 20},
		{map[string]string{"result": "model_not_served", "model": "other"}, 5},
	} {
		if n, _ := f.Sum(reqs, c.labels); n != c.want {
			t.Errorf("client: %s%v = %v, want %v", reqs, c.labels, n, c.want)
		}
	}
	if n, _ := f.Sum("lloom_inference_ttft_seconds", nil); n != 80 {
		t.Errorf("client: %v first tokens timed, want 80", n)
	}
	if n, _ := f.Sum("lloom_inference_tokens_total", map[string]string{"direction": "completion"}); n == 0 {
		t.Error("client: no completion tokens counted")
	}

	f = Scrape(t, eurl)
	labels = f.LabelValues(reqs, "model")
	if len(labels) != 41 || !labels["other"] || !labels["a-0"] {
		t.Errorf("the executor labels %v, want its 40 models and other", labels)
	}
	if n, _ := f.Sum(reqs, map[string]string{"model": "other", "result": "model_not_served"}); n != 5 {
		t.Errorf("executor: %v requests for models it does not serve counted under other, want 5", n)
	}
	if n, _ := f.Sum(reqs, map[string]string{"result": "ok"}); n != 40 {
		t.Errorf("executor: %v answers counted ok, want 40", n)
	}
}
