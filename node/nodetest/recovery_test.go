package nodetest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
)

func TestValidatorRestartRecoversRegistry(t *testing.T) {
	key := Key(t)
	var listen []ma.Multiaddr
	n := startNetwork(t, func(c *validator.Config) { c.Key = key })
	listen = n.v.Host().Addrs()
	if err := n.v.Close(); err != nil {
		t.Fatal(err)
	}
	v2, _ := StartValidator(t, func(c *validator.Config) {
		c.Key = key
		c.Listen = listen
	})
	for i, e := range n.ex {
		Eventually(t, fmt.Sprintf("executor %d back in the restarted validator", i), Registered(v2, e.ID(), modelIDs(e)...))
	}
	if st := v2.Stats(); st.GetStale() != 0 || st.GetExecutors() != 3 {
		t.Fatalf("restarted validator: %d executors, %d stale; want 3 live", st.GetExecutors(), st.GetStale())
	}
}

func TestTwoValidatorsAnswerTheSame(t *testing.T) {
	n := startNetwork(t, nil)
	v2, _ := StartValidator(t, func(c *validator.Config) { c.Peers = Bootstraps(t, n.v) })
	for i, e := range n.ex {
		Eventually(t, fmt.Sprintf("executor %d known to the second validator", i), Registered(v2, e.ID(), modelIDs(e)...))
	}
	ctx := context.Background()
	for _, model := range []string{"gpt-4", "llama3.2:3b", "mistral-7b"} {
		a, err := NewClient(t, n.v).FindModel(ctx, model, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewClient(t, v2).FindModel(ctx, model, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(a.Executors)) != fmt.Sprint(ids(b.Executors)) {
			t.Errorf("%s: first validator %v, second %v", model, ids(a.Executors), ids(b.Executors))
		}
	}
	both, err := NewClient(t, n.v, v2).FindModel(ctx, "gpt-4", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(both.Executors) != 3 || len(both.Failures) != 0 {
		t.Fatalf("merged answer: %d executors, failures %v; want 3, none", len(both.Executors), both.Failures)
	}
	for _, x := range both.Executors {
		if len(x.Validators) != 2 {
			t.Errorf("executor %s reported by %v, want both validators", x.PeerID, x.Validators)
		}
	}
}

// A heartbeat from an executor the validator does not know makes it pull
// the announcement, even one signed long ago, since the heartbeat names it;
// a validator that cannot reach the executor asks the validator that
// relayed the heartbeat.
func TestHeartbeatFromUnknownExecutorPulls(t *testing.T) {
	v1, _ := StartValidator(t, nil)
	v2, _ := StartValidator(t, func(c *validator.Config) { c.Peers = Bootstraps(t, v1) })
	ex := NewPeer(t, v1)
	issued := time.Now().Add(-10 * time.Minute) // older than the removal timeout
	env, _ := ex.SealAnnouncement(t, ex.Announcement(7, issued, Model("phi-3", 2)))
	ex.ServePull(env)
	Eventually(t, "validators meshed", func() error {
		if len(v2.Host().Network().Peers()) == 0 {
			return fmt.Errorf("second validator has no peers")
		}
		return nil
	})
	hbSeq := uint64(1)
	Eventually(t, "executor registered through pulls on both validators", func() error {
		hbSeq++
		ex.Publish(t, ex.SealHeartbeat(t, ex.Heartbeat(hbSeq, 7, time.Now())))
		for _, v := range []*validator.Validator{v1, v2} {
			if err := Registered(v, ex.ID(), "phi-3")(); err != nil {
				return err
			}
		}
		return nil
	})
	if v1.Stats().GetAnnouncementsPulled() == 0 || v2.Stats().GetAnnouncementsPulled() == 0 {
		t.Fatalf("pulls: first %d, second %d; want both > 0", v1.Stats().GetAnnouncementsPulled(), v2.Stats().GetAnnouncementsPulled())
	}
}

// A validator that learns of many executors only through another validator
// pulls their announcements from it in batches, not one query each (the
// relay's per-peer query rate limit would make that take minutes).
func TestRelayPullsAreBatched(t *testing.T) {
	const n = 20
	v1, _ := StartValidator(t, nil)
	v2, _ := StartValidator(t, func(c *validator.Config) { c.Peers = Bootstraps(t, v1) })
	var execs []*Peer
	for range n {
		ex := NewPeer(t, v1)
		env, _ := ex.SealAnnouncement(t, ex.Announcement(1, time.Now(), Model("batched", 1)))
		ex.ServePull(env)
		execs = append(execs, ex)
	}
	Eventually(t, "validators meshed", func() error {
		if len(v2.Host().Network().Peers()) == 0 {
			return fmt.Errorf("second validator has no peers")
		}
		return nil
	})
	hbSeq := uint64(0)
	last := time.Time{}
	Eventually(t, "every executor known to the second validator", func() error {
		if time.Since(last) > 1500*time.Millisecond { // a heartbeat round
			hbSeq++
			for _, ex := range execs {
				ex.Publish(t, ex.SealHeartbeat(t, ex.Heartbeat(hbSeq, 1, time.Now())))
			}
			last = time.Now()
		}
		if got := v2.Registry().Len(); got != n {
			return fmt.Errorf("%d of %d registered", got, n)
		}
		return nil
	})
	q := v1.Stats().GetQueriesServed()
	t.Logf("%d executors learned through the relay in %d queries", n, q)
	if q > n/2 {
		t.Fatalf("the relay answered %d queries for %d executors; want batches (at most %d)", q, n, n/2)
	}
}
