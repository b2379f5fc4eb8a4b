package nodetest_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// closedPort is a loopback TCP address where nobody listens: dials to it
// are refused at once.
func closedPort(t *testing.T) ma.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
}

// freshAnnouncements signs one announcement each for n fresh keys, all
// claiming addrs, on several goroutines.
func freshAnnouncements(t *testing.T, n int, kind pb.AnnouncementKind, addrs [][]byte, now time.Time) [][]byte {
	t.Helper()
	msgs := make([][]byte, n)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				key, _, err := crypto.GenerateEd25519Key(nil)
				if err != nil {
					t.Error(err)
					return
				}
				id, _ := peer.IDFromPrivateKey(key)
				a := &pb.Announcement{ExecutorId: []byte(id), Seq: 1, Kind: kind, IssuedAtMs: now.UnixMilli(), ProtocolVersion: lp.Version}
				if kind != pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
					a.Models = []*pb.ModelDescriptor{Model(fmt.Sprintf("m%d", i%7), 1)}
					a.Addrs = addrs
				}
				env, err := lp.SealAnnouncement(a, key)
				if err != nil {
					t.Error(err)
					return
				}
				msgs[i] = wrap(t, env)
			}
		})
	}
	wg.Wait()
	return msgs
}

// quiet waits until v has judged no message for a while: a flood is over.
func quiet(t *testing.T, v *validator.Validator) {
	t.Helper()
	judged := func() uint64 {
		st := v.Stats()
		return st.GetAnnouncementsAccepted() + st.GetMessagesIgnored() + st.GetMessagesRejected() + st.GetMessagesDropped()
	}
	last, since := judged(), time.Now()
	Eventually(t, "the flood judged", func() error {
		if n := judged(); n != last {
			last, since = n, time.Now()
		}
		if time.Since(since) < 500*time.Millisecond {
			return fmt.Errorf("%d judged so far", last)
		}
		return nil
	})
}

// Attack: fresh keys from one peer, ten times --max-executors (200), each
// announcing an address where nothing listens, fill the registry. They are
// held unverified, listed nowhere, and an honest executor that joins
// afterwards is discoverable within a heartbeat interval plus its liveness
// check, evicting one of them. (Before DESIGN §10 the registry refused it
// with 2001 for as long as the attacker kept announcing.) The registry's
// own TestTenThousandUnreachableKeysDoNotLockTheRegistry does it at the
// default limit of 10,000.
func TestManyIdentitiesDoNotLockTheRegistry(t *testing.T) {
	const limit, n = 200, 2000
	const heartbeat = time.Second
	v, _ := StartValidator(t, func(c *validator.Config) { c.Registry.MaxExecutors = limit })
	attacker := NewPeer(t, v)
	msgs := freshAnnouncements(t, n, pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL, [][]byte{closedPort(t).Bytes()}, time.Now())
	floodStart := time.Now()
	for _, m := range msgs {
		attacker.Publish(t, m)
	}
	Eventually(t, "registry filled by the attacker", func() error {
		if got := v.Registry().Len(); got != limit {
			return fmt.Errorf("%d of %d registered", got, limit)
		}
		return nil
	})
	quiet(t, v)
	st := v.Stats()
	t.Logf("FIGURE flood_judged_s=%.1f s (%d keys: %d accepted, %d ignored, %d rejected, %d dropped before validation)",
		time.Since(floodStart).Seconds(), n, st.GetAnnouncementsAccepted(), st.GetMessagesIgnored(), st.GetMessagesRejected(), st.GetMessagesDropped())
	if st.GetExecutors() != limit || st.GetUnverified() != limit || st.GetHealthy() != 0 {
		t.Fatalf("executors %d, unverified %d, healthy %d; want %d held, all unverified", st.GetExecutors(), st.GetUnverified(), st.GetHealthy(), limit)
	}
	// A full registry is the validator's own state, not the sender's
	// fault: ignored, not rejected, so relays are not penalised.
	if st.GetMessagesRejected() != 0 {
		t.Fatalf("%d rejected, want 0", st.GetMessagesRejected())
	}
	c := NewClient(t, v)
	if res, err := c.ListModels(context.Background(), nil); err != nil || len(res.Models) != 0 {
		t.Fatalf("list: %d models (%v); want none: unverified executors are not listed", len(res.Models), err)
	}

	joined := time.Now()
	honest, _ := StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("honest-model", 2)},
		func(c *executor.Config) { c.HeartbeatInterval = heartbeat })
	EventuallyWithin(t, heartbeat+2*time.Second, "honest executor discoverable", func() error {
		res, err := c.FindModel(context.Background(), "honest-model", nil)
		if err != nil {
			return err
		}
		if len(res.Executors) != 1 || res.Executors[0].PeerID != honest.ID() {
			return fmt.Errorf("find-model lists %d executors", len(res.Executors))
		}
		return nil
	})
	t.Logf("FIGURE honest_discoverable_s=%.3f s (bound: heartbeat %s + liveness check)", time.Since(joined).Seconds(), heartbeat)
	st = v.Stats()
	if st.GetExecutors() != limit || st.GetExecutorsEvicted() < 1 || st.GetHealthy() != 1 {
		t.Fatalf("executors %d, evicted %d, healthy %d; want %d, at least 1, 1", st.GetExecutors(), st.GetExecutorsEvicted(), st.GetHealthy(), limit)
	}
}

// Attack: many reachable keys from one address. Each is a real host on
// 127.0.0.1 that answers the liveness check with its own key; at most
// --max-executors-per-ip of them are verified, the rest held unverified
// and hidden. (The registry test TestFiveHundredKeysFromOneIP does 500
// with injected addresses.)
func TestManyReachableKeysFromOneAddress(t *testing.T) {
	const hosts, perIP = 24, 16
	v, _ := StartValidator(t, nil) // the default limit, loopback included
	var peers []*Peer
	for range hosts {
		p := NewPeer(t, v)
		env, msg := p.SealAnnouncement(t, p.Announcement(1, time.Now(), Model("crowded", 1)))
		p.ServePull(env)
		p.Publish(t, msg)
		peers = append(peers, p)
	}
	Eventually(t, "every key checked", func() error {
		st := v.Stats()
		if st.GetExecutors() != hosts || st.GetHealthy()+st.GetUnverified() != hosts || st.GetHealthy() < perIP {
			return fmt.Errorf("executors %d, verified %d, unverified %d", st.GetExecutors(), st.GetHealthy(), st.GetUnverified())
		}
		return nil
	})
	st := v.Stats()
	if st.GetHealthy() != perIP || st.GetUnverified() != hosts-perIP {
		t.Fatalf("verified %d, unverified %d; want %d and %d", st.GetHealthy(), st.GetUnverified(), perIP, hosts-perIP)
	}
	res, err := NewClient(t, v).FindModel(context.Background(), "crowded", nil)
	if err != nil || len(res.Executors) != perIP {
		t.Fatalf("find-model: %d executors (%v), want %d", len(res.Executors), err, perIP)
	}
	t.Logf("FIGURE one_address_verified=%d of %d keys", len(res.Executors), hosts)
}

// Attack (the flush and replay of issue 10): an executor withdraws; a
// flood of REMOVALs from fresh keys; then the executor's last UPDATE is
// replayed, wrapped with an unknown field so that its message id is new
// and GossipSub's seen-cache does not stop it. The REMOVALs of keys never
// registered leave no tombstone, so the victim's holds: the replay is
// ignored as a replay and the victim stays withdrawn.
func TestTombstoneFlushAndReplay(t *testing.T) {
	v, _ := StartValidator(t, func(c *validator.Config) { c.Registry.MaxTombstones = 200 })
	victim := NewPeer(t, v)
	now := time.Now()
	upd := victim.Announcement(5, now, Model("victim-model", 1))
	upd.Kind = pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE
	env, msg := victim.SealAnnouncement(t, upd)
	victim.ServePull(env)
	victim.Publish(t, msg)
	Eventually(t, "victim verified", Registered(v, victim.ID(), "victim-model"))
	rm := victim.Announcement(6, now)
	rm.Kind, rm.Models, rm.Addrs = pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL, nil, nil
	victim.Publish(t, mustSeal(t, victim, rm))
	Eventually(t, "victim withdrawn", Absent(v, victim.ID()))

	attacker := NewPeer(t, v)
	for _, m := range freshAnnouncements(t, 2000, pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL, nil, now) {
		attacker.Publish(t, m)
	}
	quiet(t, v)
	before := v.Stats()
	replay := protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), msg...), 99, protowire.BytesType), []byte("new id"))
	attacker.Publish(t, replay)
	Eventually(t, "replay judged", func() error {
		st := v.Stats()
		if st.GetMessagesIgnored() == before.GetMessagesIgnored() && st.GetAnnouncementsAccepted() == before.GetAnnouncementsAccepted() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err := Absent(v, victim.ID())(); err != nil {
		t.Fatalf("the withdrawn executor came back: %v", err)
	}
	if st := v.Stats(); st.GetMessagesIgnored() != before.GetMessagesIgnored()+1 {
		t.Fatalf("replay not ignored as a replay: %d ignored, want %d", st.GetMessagesIgnored(), before.GetMessagesIgnored()+1)
	}
}
