package validator

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lp "github.com/lloom/lloom/protocol"
)

// What a heartbeat costs the metrics — its count and its lag — allocates
// nothing, with metrics on or off: a validator takes thousands a second.
func TestHeartbeatMetricsDoNotAllocate(t *testing.T) {
	var msgs messageCounts
	now := time.Now()
	issued := now.Add(-30 * time.Millisecond).UnixMilli()
	for _, m := range []*meters{nil, newMeters(prometheus.NewRegistry())} {
		if n := testing.AllocsPerRun(1000, func() {
			msgs.accepted(kindHeartbeat)
			m.heartbeatLag(now, issued)
			m.queryServed(queryKind(1), time.Millisecond)
		}); n != 0 {
			t.Errorf("metrics on: %v; %v allocations per heartbeat, want 0", m != nil, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { msgs.refused(kindAnnouncement, verdictIgnored, lp.ErrReplay.Code) }); n != 0 {
		t.Errorf("%v allocations per refusal, want 0", n)
	}
}

// The statistics' counters are sums of the counts the metrics show.
func TestMessageCountsSum(t *testing.T) {
	var c messageCounts
	c.accepted(kindAnnouncement)
	c.accepted(kindHeartbeat)
	c.accepted(kindHeartbeat)
	c.refused(kindAnnouncement, verdictIgnored, lp.ErrReplay.Code)
	c.refused(kindHeartbeat, verdictIgnored, lp.ErrExpired.Code)
	c.refused(kindUnknown, verdictRejected, lp.ErrMalformed.Code)
	c.refused(kindAnnouncement, verdictRejected, 99999) // not a code of the contract
	for _, tt := range []struct {
		kind    msgKind
		verdict msgVerdict
		want    uint64
	}{
		{kindAnnouncement, verdictAccepted, 1},
		{kindHeartbeat, verdictAccepted, 2},
		{numKinds, verdictIgnored, 2},
		{numKinds, verdictRejected, 2},
		{kindUnknown, verdictRejected, 1},
	} {
		if got := c.sum(tt.kind, tt.verdict); got != tt.want {
			t.Errorf("sum(%d, %s) = %d, want %d", tt.kind, verdictNames[tt.verdict], got, tt.want)
		}
	}
}

// Every code of the contract, and "other", has its counter.
func TestCodesFit(t *testing.T) {
	if numCodes > maxCodes {
		t.Fatalf("the contract defines %d codes; raise maxCodes (%d) to at least %d", numCodes-1, maxCodes, numCodes)
	}
}
