package protocol_test

import (
	"bytes"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Fixed instants, so that sealed test messages (and the committed fuzz
// seeds) are the same on every run.
const (
	testSeq        uint64 = 1_700_000_000_000_000_000 // unix ns
	testIssuedAtMs int64  = 1_700_000_000_000
	testEVMAddress        = "0x52908400098527886E0F7030069857D2E4169EE7"
)

// testKey returns a deterministic Ed25519 key derived from seed, and its
// peer id. Ed25519 signatures are deterministic too.
func testKey(tb testing.TB, seed byte) (crypto.PrivKey, peer.ID) {
	tb.Helper()
	key, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		tb.Fatalf("generate key: %v", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		tb.Fatalf("peer id: %v", err)
	}
	return key, id
}

func addrBytes(tb testing.TB, s string) []byte {
	tb.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		tb.Fatalf("multiaddr %q: %v", s, err)
	}
	return a.Bytes()
}

func validModel(id string) *pb.ModelDescriptor {
	return &pb.ModelDescriptor{
		ModelId:          id,
		BackendType:      "ollama",
		MaxContextLength: 8192,
		Features:         []string{"chat", "completion"},
		Architecture:     "llama",
		ModelSize:        "7B",
		Performance: &pb.Performance{
			TokensPerSecond:    42.5,
			TimeToFirstTokenMs: 120,
			SuccessRate:        0.99,
			AverageLatencyMs:   800,
		},
		Pricing: &pb.Pricing{
			InputTokenPriceWei:  "1000000000",
			OutputTokenPriceWei: "2000000000",
			MinimumFeeWei:       "0",
		},
		Available:    true,
		Capacity:     4,
		Metadata:     map[string]string{"license": "llama3"},
		Quantization: "Q4_K_M",
	}
}

// validAnnouncement is an INITIAL announcement that passes every check.
func validAnnouncement(tb testing.TB, id peer.ID) *pb.Announcement {
	tb.Helper()
	return &pb.Announcement{
		ExecutorId: []byte(id),
		Seq:        testSeq,
		Kind:       pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL,
		Models:     []*pb.ModelDescriptor{validModel("llama3.2:3b"), validModel("mistral:7b-instruct")},
		Addrs: [][]byte{
			addrBytes(tb, "/ip4/127.0.0.1/tcp/4001"),
			addrBytes(tb, "/ip6/::1/udp/4001/quic-v1"),
		},
		IssuedAtMs:      testIssuedAtMs,
		ProtocolVersion: protocol.Version,
		EvmAddress:      testEVMAddress,
		AgentVersion:    "lloom/0.1.0",
	}
}

// validHeartbeat is a heartbeat that passes every check.
func validHeartbeat(id peer.ID) *pb.Heartbeat {
	return &pb.Heartbeat{
		ExecutorId:      []byte(id),
		Seq:             7,
		AnnouncementSeq: testSeq,
		IssuedAtMs:      testIssuedAtMs + 10_000,
		Load: &pb.Load{Models: []*pb.ModelLoad{
			{ModelId: "llama3.2:3b", Active: 1, Queued: 0, Capacity: 4},
			{ModelId: "mistral:7b-instruct", Active: 4, Queued: 2, Capacity: 4},
		}},
	}
}

func sealAnnouncement(tb testing.TB, a *pb.Announcement, key crypto.PrivKey) []byte {
	tb.Helper()
	raw, err := protocol.SealAnnouncement(a, key)
	if err != nil {
		tb.Fatalf("SealAnnouncement: %v", err)
	}
	return raw
}

func sealHeartbeat(tb testing.TB, h *pb.Heartbeat, key crypto.PrivKey) []byte {
	tb.Helper()
	raw, err := protocol.SealHeartbeat(h, key)
	if err != nil {
		tb.Fatalf("SealHeartbeat: %v", err)
	}
	return raw
}

// code returns the numeric contract code of err, 0 for nil.
func code(err error) int32 { return int32(protocol.CodeOf(err)) }
