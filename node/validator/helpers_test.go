package validator

import (
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// register puts executor i, announcing models (seq seq), in reg as a
// validator would after its liveness check: signed by a fresh key,
// verified, and reached from its own address 192.0.2.(i+1).
func register(tb testing.TB, reg *registry.Registry, i int, seq uint64, models []*pb.ModelDescriptor, now time.Time) {
	tb.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	a := &pb.Announcement{ExecutorId: []byte(id), Seq: seq, Kind: pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL,
		IssuedAtMs: now.UnixMilli(), ProtocolVersion: lp.Version, Models: models}
	env, err := lp.SealAnnouncement(a, key)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := lp.OpenAnnouncement(env)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := reg.ApplyAnnouncement(s, now); err != nil {
		tb.Fatal(err)
	}
	if _, err := reg.Reached(s, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), now); err != nil {
		tb.Fatal(err)
	}
}
