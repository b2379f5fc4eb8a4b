package nodetest_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// hostileRelay is a bare peer on the topic that relays heartbeats of an
// executor it holds the key of, and answers the validator's relay pulls
// (executor-info queries) its own way.
type hostileRelay struct {
	*Peer
	executor *Peer // only its key and announcement are used; it is not connected
	asked    atomic.Int32
	hbSeq    uint64
}

func newHostileRelay(t *testing.T, v *validator.Validator, answer func(ctx context.Context, id peer.ID, env []byte) ([]byte, error)) *hostileRelay {
	r := &hostileRelay{Peer: NewPeer(t, v), executor: NewPeer(t)}
	env, _ := r.executor.SealAnnouncement(t, r.executor.Announcement(1, time.Now(), Model("behind-hostile", 1)))
	node.Serve(r.Host, lp.QueryProtocol, lp.MaxRequestSize, 30*time.Second, func(ctx context.Context, _ peer.ID, _ []byte, _ error) ([]byte, error) {
		r.asked.Add(1)
		return answer(ctx, r.executor.ID(), env)
	})
	return r
}

// beat publishes a heartbeat of the relay's executor, naming its
// announcement, which the validator does not hold: it pulls it.
func (r *hostileRelay) beat(t *testing.T) {
	r.hbSeq++
	r.Publish(t, r.executor.SealHeartbeat(t, r.executor.Heartbeat(r.hbSeq, 1, time.Now())))
}

func executorInfo(t *testing.T, id peer.ID, env []byte) []byte {
	b, err := proto.Marshal(&pb.QueryResponse{QueryId: 1, TotalCount: 1, Result: &pb.QueryResponse_Executors{Executors: &pb.ExecutorList{
		Executors: []*pb.ExecutorEntry{{PeerId: []byte(id), AnnouncementEnvelope: env}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A relay that stalls its answer, or serves envelopes that do not verify,
// does not delay pulls through other relays: each relay has its own lane.
// One that serves bad envelopes loses GossipSub score and is not asked
// again for a while.
func TestHostileRelay(t *testing.T) {
	// start returns a validator v, an honest validator relaying for an
	// executor connected to it only, and that executor.
	start := func(t *testing.T, scores *scoreBook) (*validator.Validator, *Peer) {
		v, _ := StartValidator(t, func(c *validator.Config) {
			if scores != nil {
				c.GossipOptions = append(c.GossipOptions, pubsub.WithPeerScoreInspect(scores.set, 50*time.Millisecond))
			}
		})
		honestRelay, _ := StartValidator(t, func(c *validator.Config) { c.Peers = Bootstraps(t, v) })
		Eventually(t, "validators meshed", func() error {
			if len(v.Host().Network().Peers()) == 0 {
				return fmt.Errorf("no peers")
			}
			return nil
		})
		ex := NewPeer(t, honestRelay)
		env, _ := ex.SealAnnouncement(t, ex.Announcement(7, time.Now(), Model("behind-honest", 1)))
		ex.ServePull(env)
		return v, ex
	}
	// viaHonest measures how long v takes to learn the executor behind
	// the honest relay from its heartbeats.
	viaHonest := func(t *testing.T, v *validator.Validator, ex *Peer) time.Duration {
		began := time.Now()
		hbSeq := uint64(0)
		var last time.Time
		Eventually(t, "executor behind the honest relay known", func() error {
			if time.Since(last) > 300*time.Millisecond {
				hbSeq++
				ex.Publish(t, ex.SealHeartbeat(t, ex.Heartbeat(hbSeq, 7, time.Now())))
				last = time.Now()
			}
			return Held(v, ex.ID(), "behind-honest")()
		})
		return time.Since(began)
	}

	t.Run("stalling", func(t *testing.T) {
		v, ex := start(t, nil)
		stall := make(chan struct{})
		t.Cleanup(func() { close(stall) })
		hostile := newHostileRelay(t, v, func(ctx context.Context, _ peer.ID, _ []byte) ([]byte, error) {
			select {
			case <-stall:
			case <-ctx.Done():
			}
			return nil, ctx.Err()
		})
		hostile.beat(t)
		Eventually(t, "the hostile relay asked", func() error {
			if hostile.asked.Load() == 0 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		took := viaHonest(t, v, ex)
		t.Logf("FIGURE pull_via_honest_relay_while_another_stalls_s=%.3f s (pull timeout %s)", took.Seconds(), validator.DefaultConfig().PullTimeout)
		if took >= 2*time.Second {
			t.Fatalf("the pull through the honest relay took %s while another relay stalled; want well under the pull timeout", took)
		}
	})

	t.Run("bad envelopes", func(t *testing.T) {
		scores := &scoreBook{}
		v, ex := start(t, scores)
		hostile := newHostileRelay(t, v, func(_ context.Context, id peer.ID, env []byte) ([]byte, error) {
			bad := append([]byte(nil), env...)
			bad[len(bad)-1] ^= 0xff // the signature's last byte
			return executorInfo(t, id, bad), nil
		})
		hostile.beat(t)
		Eventually(t, "the hostile relay's score below zero", func() error {
			if sc, ok := scores.get(hostile.ID()); !ok || sc >= 0 {
				return fmt.Errorf("score %v (known %v)", sc, ok)
			}
			return nil
		})
		asked := hostile.asked.Load()
		took := viaHonest(t, v, ex)
		t.Logf("FIGURE pull_via_honest_relay_after_bad_envelopes_s=%.3f s", took.Seconds())
		for range 3 { // heartbeats more than a pull period apart
			time.Sleep(1100 * time.Millisecond)
			hostile.beat(t)
		}
		time.Sleep(300 * time.Millisecond)
		if n := hostile.asked.Load(); n != asked {
			t.Fatalf("the relay that served a bad envelope was asked %d more times; want none for a while", n-asked)
		}
		if err := Absent(v, hostile.executor.ID())(); err != nil {
			t.Fatalf("a bad envelope registered its executor: %v", err)
		}
	})
}
