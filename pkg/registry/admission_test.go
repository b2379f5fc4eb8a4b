package registry

import (
	"crypto/rand"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func registryWith(tb testing.TB, edit func(*Config)) *Registry {
	tb.Helper()
	cfg := DefaultConfig()
	edit(&cfg)
	r, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// An executor admitted by gossip is unverified: counted, but hidden from
// queries unless asked for, until the validator reaches it.
func TestUnverifiedHiddenUntilReached(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	s := x.announce(t, 1, initial, desc("a"))
	if res := mustAnnounceUnverified(t, r, s, at(0)); !res.New || !res.Check {
		t.Fatalf("result %+v, want New asking for a check", res)
	}
	if n := findModel(t, r, "a", nil, 0, 0, at(0)).GetTotalCount(); n != 0 {
		t.Fatalf("find-model lists %d unverified executors by default, want 0", n)
	}
	if n := listModels(t, r, nil, 0, 0, at(0)).GetTotalCount(); n != 0 {
		t.Fatalf("list shows %d models of unverified executors, want 0", n)
	}
	got := findModel(t, r, "a", &pb.QueryFilters{IncludeUnverified: true}, 0, 0, at(0)).GetExecutors().GetExecutors()
	if len(got) != 1 || got[0].GetVerified() {
		t.Fatalf("with include_unverified: %d entries (verified %v), want 1 marked unverified", len(got), len(got) > 0 && got[0].GetVerified())
	}
	st := r.Stats(at(0))
	if st.GetExecutors() != 1 || st.GetUnverified() != 1 || st.GetHealthy() != 0 {
		t.Fatalf("stats: executors %d unverified %d healthy %d; want 1, 1, 0", st.GetExecutors(), st.GetUnverified(), st.GetHealthy())
	}

	res, err := r.Reached(s, netip.MustParseAddr("192.0.2.1"), at(time.Second))
	if err != nil || !res.Verified {
		t.Fatalf("Reached = %+v, %v; want verified", res, err)
	}
	got = findModel(t, r, "a", nil, 0, 0, at(time.Second)).GetExecutors().GetExecutors()
	if len(got) != 1 || !got[0].GetVerified() {
		t.Fatalf("after the check: %d entries, want 1 marked verified", len(got))
	}
	st = r.Stats(at(time.Second))
	if st.GetUnverified() != 0 || st.GetHealthy() != 1 {
		t.Fatalf("stats after the check: unverified %d healthy %d; want 0, 1", st.GetUnverified(), st.GetHealthy())
	}
}

// The registry takes only what a verifying function made.
func TestZeroVerifiedValueRefused(t *testing.T) {
	r := newTestRegistry(t)
	if _, err := r.ApplyAnnouncement(&protocol.VerifiedAnnouncement{}, at(0)); err == nil {
		t.Fatal("a zero VerifiedAnnouncement was applied")
	}
	if _, err := r.ApplyHeartbeat(&protocol.VerifiedHeartbeat{}, at(0)); err == nil {
		t.Fatal("a zero VerifiedHeartbeat was applied")
	}
	if _, err := r.Reached(nil, netip.MustParseAddr("192.0.2.1"), at(0)); err == nil {
		t.Fatal("a nil announcement verified an executor")
	}
}

func TestAddrGroup(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
	} {
		if AddrGroup(netip.MustParseAddr(tt.a)) != AddrGroup(netip.MustParseAddr(tt.b)) {
			t.Errorf("%s and %s in different groups, want one", tt.a, tt.b)
		}
	}
	for _, tt := range []struct{ a, b string }{
		{"192.0.2.1", "192.0.2.2"},
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"127.0.0.1", "127.0.0.2"},
	} {
		if AddrGroup(netip.MustParseAddr(tt.a)) == AddrGroup(netip.MustParseAddr(tt.b)) {
			t.Errorf("%s and %s in one group, want two", tt.a, tt.b)
		}
	}
}

// At most MaxPerIP executors per observed address group are verified; the
// others stay unverified (hidden) and one gets in when a slot frees.
func TestMaxPerIP(t *testing.T) {
	r := registryWith(t, func(c *Config) { c.MaxPerIP = 3 })
	crowd := netip.MustParseAddr("198.51.100.7")
	xs := newExecs(t, 5)
	for i, x := range xs {
		s := x.announce(t, 1, initial, desc("m"))
		mustAnnounceUnverified(t, r, s, at(0))
		res, err := r.Reached(s, crowd, at(0))
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 3; res.Verified != want || res.Crowded == want {
			t.Fatalf("executor %d: %+v, want verified %v", i, res, want)
		}
	}
	if n := findModel(t, r, "m", nil, 0, 0, at(0)).GetTotalCount(); n != 3 {
		t.Fatalf("%d executors listed from one address, want the limit of 3", n)
	}
	// Another address is not affected; loopback counts like any other.
	other := newExec(t)
	s := other.announce(t, 1, initial, desc("m"))
	mustAnnounceUnverified(t, r, s, at(0))
	if res, _ := r.Reached(s, netip.MustParseAddr("127.0.0.1"), at(0)); !res.Verified {
		t.Fatal("an executor of another address was not verified")
	}
	// One of the crowd leaves: the next check of a waiting one gets in.
	mustAnnounce(t, r, xs[0].announce(t, 2, removal), at(time.Second))
	if res, _ := r.Reached(xs[3].announce(t, 1, initial, desc("m")), crowd, at(2*time.Second)); !res.Verified {
		t.Fatalf("a crowded executor stays unverified after a slot freed: %+v", res)
	}

	unlimited := registryWith(t, func(c *Config) { c.MaxPerIP = 0 })
	for _, x := range newExecs(t, 20) {
		s := x.announce(t, 1, initial, desc("m"))
		mustAnnounceUnverified(t, unlimited, s, at(0))
		if res, _ := unlimited.Reached(s, crowd, at(0)); !res.Verified {
			t.Fatal("max-executors-per-ip 0 limited an address")
		}
	}
}

// When full, a verified newcomer evicts the worst entry: unverified first,
// then the stalest, then the youngest of the most crowded address, and
// only if that address holds at least two more than the newcomer's.
func TestEvictionOrder(t *testing.T) {
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	fill := func(t *testing.T, r *Registry, n int, ip func(i int) netip.Addr, verify func(i int) bool) []*execKey {
		xs := newExecs(t, n)
		for i, x := range xs {
			s := x.announce(t, 1, initial, desc("m"))
			mustAnnounceUnverified(t, r, s, at(time.Duration(i)*time.Second))
			if verify(i) {
				if _, err := r.Reached(s, ip(i), at(time.Duration(i)*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
		}
		return xs
	}
	newcomer := func(t *testing.T, r *Registry, ip netip.Addr, now time.Time) (ReachResult, error) {
		x := newExec(t)
		s := x.announce(t, 1, initial, desc("m"))
		if _, err := r.ApplyAnnouncement(s, now); !errors.Is(err, protocol.ErrRegistryFull) {
			t.Fatalf("unverified newcomer to a full registry: %v, want ErrRegistryFull", err)
		}
		return r.Reached(s, ip, now)
	}
	cfg := func(c *Config) { c.MaxExecutors = 4; c.MaxPerIP = 0 }

	t.Run("unverified first, the oldest", func(t *testing.T) {
		r := registryWith(t, cfg)
		xs := fill(t, r, 4, addr, func(i int) bool { return i == 0 || i == 3 })
		res, err := newcomer(t, r, addr(9), at(10*time.Second))
		if err != nil || res.Evicted != xs[1].id {
			t.Fatalf("evicted %s (%v), want the oldest unverified %s", res.Evicted, err, xs[1].id)
		}
	})
	t.Run("then the stalest", func(t *testing.T) {
		r := registryWith(t, cfg)
		xs := fill(t, r, 4, addr, func(int) bool { return true })
		now := at(DefaultStaleAfter + 2*time.Second) // xs[0..1] stale
		res, err := newcomer(t, r, addr(9), now)
		if err != nil || res.Evicted != xs[0].id {
			t.Fatalf("evicted %s (%v), want the stalest %s", res.Evicted, err, xs[0].id)
		}
	})
	t.Run("then the youngest of the most crowded address", func(t *testing.T) {
		r := registryWith(t, cfg)
		crowd := func(i int) netip.Addr {
			if i < 3 {
				return addr(1)
			}
			return addr(2)
		}
		xs := fill(t, r, 4, crowd, func(int) bool { return true })
		res, err := newcomer(t, r, addr(9), at(5*time.Second))
		if err != nil || res.Evicted != xs[2].id {
			t.Fatalf("evicted %s (%v), want the youngest of the crowd %s", res.Evicted, err, xs[2].id)
		}
		st := r.Stats(at(5 * time.Second))
		if st.GetExecutors() != 4 || st.GetExecutorsEvicted() != 1 {
			t.Fatalf("executors %d evicted %d, want 4, 1", st.GetExecutors(), st.GetExecutorsEvicted())
		}
	})
	t.Run("never one of distinct addresses", func(t *testing.T) {
		r := registryWith(t, cfg)
		fill(t, r, 4, addr, func(int) bool { return true })
		if _, err := newcomer(t, r, addr(9), at(5*time.Second)); !errors.Is(err, protocol.ErrRegistryFull) {
			t.Fatalf("newcomer of a fifth address: %v, want ErrRegistryFull (no entry is worse)", err)
		}
	})
}

// Failed checks back off; DueChecks hands out each unverified executor
// once per backoff; new addresses ask for a check at once.
func TestCheckBackoff(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	mustAnnounceUnverified(t, r, x.announce(t, 1, initial, desc("a")), at(0))
	if due := r.DueChecks(at(0), 10); len(due) != 0 {
		t.Fatalf("%d due at once; the announcement's own check (Check) comes first", len(due))
	}
	r.CheckFailed(x.id, at(0))
	for _, tt := range []struct {
		at   time.Duration
		want int
	}{{500 * time.Millisecond, 0}, {time.Second, 1}, {1500 * time.Millisecond, 0}, {3 * time.Second, 1}} {
		if due := r.DueChecks(at(tt.at), 10); len(due) != tt.want {
			t.Fatalf("at %s: %d due, want %d", tt.at, len(due), tt.want)
		}
	}
	a := x.announcement(2, update, desc("a"))
	a.Addrs = [][]byte{testAddrs[0]}
	raw, err := protocol.SealAnnouncement(a, x.key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := protocol.OpenAnnouncement(raw)
	if err != nil {
		t.Fatal(err)
	}
	if res := mustAnnounceUnverified(t, r, s, at(4*time.Second)); !res.Check {
		t.Fatal("new addresses did not ask for a check")
	}
	if res := mustAnnounceUnverified(t, r, x.announce(t, 3, update, desc("a")), at(5*time.Second)); !res.Check {
		t.Fatal("addresses changed back did not ask for a check")
	}
	if res := mustAnnounceUnverified(t, r, x.announce(t, 4, update, desc("b")), at(5*time.Second)); res.Check {
		t.Fatal("same addresses asked for a check")
	}
}

// A verified executor whose re-check fails is hidden again.
func TestRecheckFailureHides(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	mustAnnounce(t, r, x.announce(t, 1, initial, desc("a")), at(0))
	r.CheckFailed(x.id, at(time.Second))
	if n := findModel(t, r, "a", nil, 0, 0, at(time.Second)).GetTotalCount(); n != 0 || r.Verified(x.id) {
		t.Fatal("an executor whose check failed is still listed")
	}
}

// The entry of one executor is bounded: envelope, addresses and the
// heartbeat its models need.
func TestEntryByteBudget(t *testing.T) {
	r := registryWith(t, func(c *Config) { c.MaxEntryBytes = minEntryBytes })
	x := newExec(t)
	big := desc("big", func(d *pb.ModelDescriptor) {
		d.Metadata = map[string]string{}
		for i := range 16 {
			d.Metadata[string(rune('a'+i))] = string(make([]byte, 250))
		}
	})
	_, err := r.ApplyAnnouncement(x.announce(t, 1, initial, big), at(0))
	if !errors.Is(err, ErrOverBudget) || protocol.CodeOf(err) != pb.ErrorCode_ERROR_CODE_MODEL_LIMIT_EXCEEDED {
		t.Fatalf("announcement over the budget: %v (code %v), want ErrOverBudget with 2005", err, protocol.CodeOf(err))
	}
	if r.Len() != 0 {
		t.Fatal("an announcement over the budget was registered")
	}
	mustAnnounce(t, r, x.announce(t, 2, initial, desc("a")), at(0))
	var loads []*pb.ModelLoad
	for i := range 10 {
		loads = append(loads, load(strings.Repeat(string(rune('a'+i)), protocol.MaxModelIDLen), 0, 0, 0))
	}
	if _, err := r.ApplyHeartbeat(x.heartbeat(t, 1, 2, loads...), at(0)); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("heartbeat of 10 longest loads for 1 model: %v, want ErrOverBudget", err)
	}
	mustHeartbeat(t, r, x.heartbeat(t, 2, 2, load("a", 1, 0, 0)), at(0))
}

// Attack (registry level): 10,000 fresh keys, none reachable, fill the
// registry; an honest executor that proves its key gets in at once,
// evicting one of them, and is listed.
func TestTenThousandUnreachableKeysDoNotLockTheRegistry(t *testing.T) {
	const n = DefaultMaxExecutors
	r := newTestRegistry(t)
	ids := flood(t, r, n, initial, at(0))
	if r.Len() != n {
		t.Fatalf("%d registered, want %d", r.Len(), n)
	}
	for _, id := range ids[:100] { // their checks fail
		r.CheckFailed(id, at(0))
	}
	honest := newExec(t)
	s := honest.announce(t, 1, initial, desc("honest-model"))
	if _, err := r.ApplyAnnouncement(s, at(time.Second)); !errors.Is(err, protocol.ErrRegistryFull) {
		t.Fatalf("honest announcement to the full registry: %v, want ErrRegistryFull until verified", err)
	}
	res, err := r.Reached(s, netip.MustParseAddr("192.0.2.55"), at(time.Second))
	if err != nil || !res.Verified || res.Evicted == "" {
		t.Fatalf("honest executor reached: %+v, %v; want verified, one attacker evicted", res, err)
	}
	if got := peers(findModel(t, r, "honest-model", nil, 0, 0, at(time.Second)).GetExecutors().GetExecutors()); len(got) != 1 || got[0] != honest.id {
		t.Fatalf("find-model lists %v, want the honest executor", got)
	}
	if r.Len() != n {
		t.Fatalf("registry holds %d, want still %d", r.Len(), n)
	}
	// The attacker's keys cannot get back in by announcing again: full.
	x := newExec(t)
	if _, err := r.ApplyAnnouncement(x.announce(t, 1, initial, desc("m")), at(2*time.Second)); !errors.Is(err, protocol.ErrRegistryFull) {
		t.Fatalf("another unverified key: %v, want ErrRegistryFull", err)
	}
}

// Attack (registry level, observed addresses injected): 500 keys that all
// prove themselves from one IP get at most MaxPerIP verified.
func TestFiveHundredKeysFromOneIP(t *testing.T) {
	r := newTestRegistry(t)
	ip := netip.MustParseAddr("198.51.100.99")
	verified := 0
	for _, s := range signInParallel(t, 500) {
		mustAnnounceUnverified(t, r, s, at(0))
		res, err := r.Reached(s, ip, at(0))
		if err != nil {
			t.Fatal(err)
		}
		if res.Verified {
			verified++
		}
	}
	st := r.Stats(at(0))
	if verified != DefaultMaxPerIP || st.GetUnverified() != 500-DefaultMaxPerIP {
		t.Fatalf("%d verified, %d unverified; want %d and %d", verified, st.GetUnverified(), DefaultMaxPerIP, 500-DefaultMaxPerIP)
	}
	if n := findModel(t, r, "m0", &pb.QueryFilters{}, 0, 0, at(0)).GetTotalCount() +
		findModel(t, r, "m1", nil, 0, 0, at(0)).GetTotalCount(); n != DefaultMaxPerIP {
		t.Fatalf("%d listed, want %d", n, DefaultMaxPerIP)
	}
}

// Attack (the flush and replay): the victim withdraws; a flood of
// REMOVALs from fresh keys; then the victim's last UPDATE replayed. The
// REMOVALs leave no tombstone, so the victim's holds and the replay is
// refused.
func TestTombstoneFlushAndReplay(t *testing.T) {
	r := registryWith(t, func(c *Config) { c.MaxTombstones = 200 })
	victim := newExec(t)
	last := victim.announce(t, 5, update, desc("victim-model"))
	mustAnnounce(t, r, last, at(0))
	mustAnnounce(t, r, victim.announce(t, 6, removal), at(time.Second))
	flood(t, r, 2000, removal, at(2*time.Second))
	if _, err := r.ApplyAnnouncement(last, at(3*time.Second)); !errors.Is(err, protocol.ErrReplay) {
		t.Fatalf("replayed UPDATE after the flood: %v, want ErrReplay", err)
	}
	if r.Len() != 0 {
		t.Fatal("the withdrawn executor is back")
	}
}

// signInParallel signs n announcements of fresh keys, each serving one of
// two models, on every core.
func signInParallel(tb testing.TB, n int) []*protocol.VerifiedAnnouncement {
	out := make([]*protocol.VerifiedAnnouncement, n)
	parallel(n, func(i int) { out[i] = newExec(tb).announce(tb, 1, initial, desc([]string{"m0", "m1"}[i%2])) })
	return out
}

// flood applies n announcements of kind from fresh ids, as an attacker's
// one peer relays them. Signing 10,000 envelopes takes half a minute under
// the race detector, and the registry does not look into envelopes: the
// ids are random Ed25519-style peer ids, the envelopes 300 bytes of
// nothing, applied through applyLocked, which takes what
// ApplyAnnouncement unwraps.
func flood(tb testing.TB, r *Registry, n int, kind pb.AnnouncementKind, now time.Time) []peer.ID {
	tb.Helper()
	ids := make([]peer.ID, n)
	for i := range ids {
		var key [32]byte
		if _, err := rand.Read(key[:]); err != nil {
			tb.Fatal(err)
		}
		ids[i] = peer.ID("\x00\x24\x08\x01\x12\x20" + string(key[:]))
		a := &pb.Announcement{ProtocolVersion: protocol.Version, ExecutorId: []byte(ids[i]), Seq: 1, Kind: kind, IssuedAtMs: now.UnixMilli()}
		if kind != removal {
			a.Models = []*pb.ModelDescriptor{desc("m")}
			a.Addrs = testAddrs
		}
		r.mu.Lock()
		_, err := r.applyLocked(ids[i], a, make([]byte, 300), now)
		r.mu.Unlock()
		if err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}

func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				f(i)
			}
		})
	}
	wg.Wait()
}
