package registry

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// t0 is the tests' epoch; every time is an offset from it.
var t0 = time.Unix(1_700_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

const (
	initial = pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL
	update  = pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE
	removal = pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL

	healthy    = pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY
	overloaded = pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED
	stale      = pb.ExecutorStatus_EXECUTOR_STATUS_STALE
)

// execKey is a test executor: a real key that seals real envelopes.
type execKey struct {
	key crypto.PrivKey
	id  peer.ID
}

func newExec(tb testing.TB) *execKey {
	tb.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return &execKey{key: key, id: id}
}

// newExecs returns n executors sorted by peer id, so that tests can name the
// tie-break order.
func newExecs(tb testing.TB, n int) []*execKey {
	xs := make([]*execKey, n)
	for i := range xs {
		xs[i] = newExec(tb)
	}
	slices.SortFunc(xs, func(a, b *execKey) int { return bytes.Compare([]byte(a.id), []byte(b.id)) })
	return xs
}

var testAddrs = [][]byte{
	ma.StringCast("/ip4/10.0.0.1/tcp/4001").Bytes(),
	ma.StringCast("/ip4/10.0.0.1/udp/4001/quic-v1").Bytes(),
}

// announcement builds an unsealed announcement.
func (x *execKey) announcement(seq uint64, kind pb.AnnouncementKind, models ...*pb.ModelDescriptor) *pb.Announcement {
	a := &pb.Announcement{
		ProtocolVersion: protocol.Version,
		ExecutorId:      []byte(x.id),
		Seq:             seq,
		Kind:            kind,
		Models:          models,
		IssuedAtMs:      t0.UnixMilli(),
	}
	if kind != removal {
		a.Addrs = testAddrs
	}
	return a
}

// announce seals and opens an announcement, as a validator receives it.
func (x *execKey) announce(tb testing.TB, seq uint64, kind pb.AnnouncementKind, models ...*pb.ModelDescriptor) *protocol.VerifiedAnnouncement {
	tb.Helper()
	raw, err := protocol.SealAnnouncement(x.announcement(seq, kind, models...), x.key)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := protocol.OpenAnnouncement(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// heartbeat seals and opens a heartbeat.
func (x *execKey) heartbeat(tb testing.TB, seq, annSeq uint64, loads ...*pb.ModelLoad) *protocol.VerifiedHeartbeat {
	tb.Helper()
	h := &pb.Heartbeat{
		ExecutorId:      []byte(x.id),
		Seq:             seq,
		AnnouncementSeq: annSeq,
		IssuedAtMs:      t0.UnixMilli(),
		Load:            &pb.Load{Models: loads},
	}
	raw, err := protocol.SealHeartbeat(h, x.key)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := protocol.OpenHeartbeat(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// desc is an available model with capacity 4; opts adjust it.
func desc(id string, opts ...func(*pb.ModelDescriptor)) *pb.ModelDescriptor {
	d := &pb.ModelDescriptor{
		ModelId:          id,
		BackendType:      "ollama",
		MaxContextLength: 8192,
		Features:         []string{"chat", "completion"},
		Available:        true,
		Capacity:         4,
		Pricing:          &pb.Pricing{InputTokenPriceWei: "1000", OutputTokenPriceWei: "2000"},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

func load(id string, active, queued, capacity uint32) *pb.ModelLoad {
	return &pb.ModelLoad{ModelId: id, Active: active, Queued: queued, Capacity: capacity}
}

func newTestRegistry(tb testing.TB) *Registry {
	tb.Helper()
	r, err := New(DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// mustAnnounce applies an announcement that the test expects to succeed,
// then, unless it is a REMOVAL, the liveness check that a validator runs
// next, from the executor's own address (testIP), so that queries list it.
func mustAnnounce(tb testing.TB, r *Registry, s *protocol.VerifiedAnnouncement, now time.Time) AnnounceResult {
	tb.Helper()
	res := mustAnnounceUnverified(tb, r, s, now)
	if s.Announcement().GetKind() != removal {
		if _, err := r.Reached(s, testIP(s.Signer()), now); err != nil {
			tb.Fatalf("liveness check of %s: %v", s.Signer(), err)
		}
	}
	return res
}

// mustAnnounceUnverified applies an announcement as gossip brings it,
// with no liveness check.
func mustAnnounceUnverified(tb testing.TB, r *Registry, s *protocol.VerifiedAnnouncement, now time.Time) AnnounceResult {
	tb.Helper()
	res, err := r.ApplyAnnouncement(s, now)
	if err != nil {
		tb.Fatalf("announcement seq %d: %v", s.Announcement().GetSeq(), err)
	}
	return res
}

// testIP is an executor's own observed address: 10.x.y.z from its id, so
// that test executors rarely share an address group.
func testIP(id peer.ID) netip.Addr {
	sum := sha256.Sum256([]byte(id))
	return netip.AddrFrom4([4]byte{10, sum[0], sum[1], sum[2]})
}

// markVerified verifies id directly, for fixtures whose envelopes are not
// real (the registry does not look into envelopes).
func markVerified(tb testing.TB, r *Registry, id peer.ID) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.executors[id]
	if e == nil {
		tb.Fatalf("%s not registered", id)
	}
	r.setVerified(e, true, AddrGroup(testIP(id)))
}

func mustHeartbeat(tb testing.TB, r *Registry, s *protocol.VerifiedHeartbeat, now time.Time) HeartbeatResult {
	tb.Helper()
	res, err := r.ApplyHeartbeat(s, now)
	if err != nil {
		tb.Fatalf("heartbeat seq %d: %v", s.Heartbeat().GetSeq(), err)
	}
	return res
}

// findModel runs a find-model query with filters.
func findModel(tb testing.TB, r *Registry, id string, f *pb.QueryFilters, offset, limit uint32, now time.Time) *pb.QueryResponse {
	tb.Helper()
	q := &pb.QueryRequest{
		QueryId: 7,
		Query:   &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: id}},
		Filters: f,
		Limit:   limit,
		Offset:  offset,
	}
	return query(tb, r, q, now)
}

// query checks q as a validator would, then runs it.
func query(tb testing.TB, r *Registry, q *pb.QueryRequest, now time.Time) *pb.QueryResponse {
	tb.Helper()
	limit, err := protocol.CheckQuery(q)
	if err != nil {
		tb.Fatalf("query does not pass CheckQuery: %v", err)
	}
	resp := r.Query(q, limit, now)
	if resp.GetQueryId() != q.GetQueryId() {
		tb.Fatalf("query_id = %d, want %d echoed", resp.GetQueryId(), q.GetQueryId())
	}
	return resp
}

// peers returns the peer ids of entries.
func peers(entries []*pb.ExecutorEntry) []peer.ID {
	ids := make([]peer.ID, len(entries))
	for i, e := range entries {
		ids[i] = peer.ID(e.GetPeerId())
	}
	return ids
}

func idsOf(xs ...*execKey) []peer.ID {
	ids := make([]peer.ID, len(xs))
	for i, x := range xs {
		ids[i] = x.id
	}
	return ids
}
