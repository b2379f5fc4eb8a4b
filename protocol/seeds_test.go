package protocol_test

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpus under testdata/fuzz")

type seed struct {
	name string
	args []any
}

// fuzzSeeds returns the seed inputs of every fuzz target, by target name.
// Keys are fixed and Ed25519 and secp256k1 signatures deterministic, so the
// seeds are the same on every run.
func fuzzSeeds(tb testing.TB) map[string][]seed {
	tb.Helper()
	key, id := testKey(tb, 1)
	_, idB := testKey(tb, 2)
	secpKey, err := crypto.UnmarshalSecp256k1PrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		tb.Fatalf("secp256k1 key: %v", err)
	}
	secpID, err := peer.IDFromPrivateKey(secpKey)
	if err != nil {
		tb.Fatalf("secp256k1 id: %v", err)
	}

	ann := validAnnouncement(tb, id)
	annRaw := sealAnnouncement(tb, ann, key)
	removal := proto.Clone(ann).(*pb.Announcement)
	removal.Kind, removal.Models = pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL, nil
	removalRaw := sealAnnouncement(tb, removal, key)
	secpRaw := sealAnnouncement(tb, validAnnouncement(tb, secpID), secpKey)
	hb := validHeartbeat(id)
	hbRaw := sealHeartbeat(tb, hb, key)
	hbBare := sealHeartbeat(tb, &pb.Heartbeat{ExecutorId: []byte(id), Seq: 1, IssuedAtMs: 1}, key)

	claimB := &protocol.AnnouncementRecord{}
	proto.Merge(&claimB.Announcement, validAnnouncement(tb, idB))
	impersonation := sealForeign(tb, claimB, key)
	hbClaimB := &protocol.HeartbeatRecord{}
	proto.Merge(&hbClaimB.Heartbeat, validHeartbeat(idB))
	hbImpersonation := sealForeign(tb, hbClaimB, key)
	annPayload := marshalDetTB(tb, ann)
	hbPayload := marshalDetTB(tb, hb)
	wrongDomain := sealForeign(tb, &foreignRecord{protocol.HeartbeatDomain, protocol.AnnouncementPayloadType, annPayload}, key)
	hbWrongDomain := sealForeign(tb, &foreignRecord{protocol.AnnouncementDomain, protocol.HeartbeatPayloadType, hbPayload}, key)
	tampered := editEnvelopeTB(tb, annRaw, func(e *recordpb.Envelope) { e.Signature[0] ^= 1 })

	b := func(bs []byte) []any { return []any{bs} }
	gossip := func(m *pb.GossipMessage) []any { return b(marshalDetTB(tb, m)) }
	query := func(q *pb.QueryRequest) []any { return b(marshalDetTB(tb, q)) }
	withFrame := func(bs []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(bs))), bs...) }

	envelopes := []seed{
		{"valid-announcement", b(annRaw)},
		{"valid-removal", b(removalRaw)},
		{"valid-secp256k1-announcement", b(secpRaw)},
		{"valid-heartbeat", b(hbRaw)},
		{"valid-heartbeat-no-load", b(hbBare)},
		{"impersonation", b(impersonation)},
		{"heartbeat-impersonation", b(hbImpersonation)},
		{"wrong-domain", b(wrongDomain)},
		{"heartbeat-wrong-domain", b(hbWrongDomain)},
		{"flipped-signature", b(tampered)},
		{"truncated", b(annRaw[:len(annRaw)/2])},
		{"garbage", b([]byte("not an envelope"))},
		{"empty", b([]byte{})},
	}
	return map[string][]seed{
		"FuzzReadFrame": {
			{"empty-frame", b([]byte{0})},
			{"one-byte", b([]byte{1, 'x'})},
			{"query-frame", b(withFrame(marshalDetTB(tb, &pb.QueryRequest{QueryId: 1, Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}})))},
			{"two-byte-prefix", b(withFrame(bytes.Repeat([]byte{'a'}, 200)))},
			{"non-minimal-prefix", b([]byte{0x81, 0x00, 'x'})},
			{"over-limit", b(binary.AppendUvarint(nil, protocol.MaxRequestSize+1))},
			{"overflow", b(append(bytes.Repeat([]byte{0xff}, 10), 0x01))},
			{"truncated-prefix", b([]byte{0x80})},
			{"truncated-body", b([]byte{5, 'a', 'b'})},
			{"empty", b([]byte{})},
		},
		"FuzzDecodeAnnouncement": envelopes,
		"FuzzDecodeHeartbeat":    envelopes,
		"FuzzGossipMessage": {
			{"announcement", gossip(&pb.GossipMessage{Payload: &pb.GossipMessage_AnnouncementEnvelope{AnnouncementEnvelope: annRaw}})},
			{"removal", gossip(&pb.GossipMessage{Payload: &pb.GossipMessage_AnnouncementEnvelope{AnnouncementEnvelope: removalRaw}})},
			{"heartbeat", gossip(&pb.GossipMessage{Payload: &pb.GossipMessage_HeartbeatEnvelope{HeartbeatEnvelope: hbRaw}})},
			{"heartbeat-in-announcement-field", gossip(&pb.GossipMessage{Payload: &pb.GossipMessage_AnnouncementEnvelope{AnnouncementEnvelope: hbRaw}})},
			{"impersonation", gossip(&pb.GossipMessage{Payload: &pb.GossipMessage_AnnouncementEnvelope{AnnouncementEnvelope: impersonation}})},
			{"wrong-domain", gossip(&pb.GossipMessage{Payload: &pb.GossipMessage_AnnouncementEnvelope{AnnouncementEnvelope: wrongDomain}})},
			{"empty-envelope", gossip(&pb.GossipMessage{Payload: &pb.GossipMessage_HeartbeatEnvelope{HeartbeatEnvelope: []byte{}}})},
			{"no-payload", b([]byte{})},
			{"garbage", b([]byte{0x0a, 0xff})},
		},
		"FuzzSignedPayload": {
			{"announcement", []any{annPayload, false}},
			{"removal", []any{marshalDetTB(tb, removal), false}},
			{"heartbeat", []any{hbPayload, true}},
			{"heartbeat-as-announcement", []any{hbPayload, false}},
			{"announcement-as-heartbeat", []any{annPayload, true}},
			{"empty-announcement", []any{[]byte{}, false}},
			{"empty-heartbeat", []any{[]byte{}, true}},
		},
		"FuzzCheckQuery": {
			{"list-models", query(&pb.QueryRequest{QueryId: 1, Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}, Limit: 10, Offset: 5})},
			{"find-model", query(&pb.QueryRequest{QueryId: 2, Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: "llama3.2:3b"}}, Filters: &pb.QueryFilters{BackendType: "ollama", MinContextLength: 4096, RequiredFeatures: []string{"chat"}, MaxInputPriceWei: "100", MaxOutputPriceWei: "200", IncludeStale: true}})},
			{"executor-info", query(&pb.QueryRequest{QueryId: 3, Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: [][]byte{[]byte(id), []byte(idB)}}}})},
			{"executor-info-text-id", query(&pb.QueryRequest{Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: [][]byte{[]byte(id.String())}}}})},
			{"statistics", query(&pb.QueryRequest{QueryId: 4, Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}})},
			{"limit-1001", query(&pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}, Limit: 1001})},
			{"no-query", query(&pb.QueryRequest{QueryId: 5})},
			{"bad-price", query(&pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}, Filters: &pb.QueryFilters{MaxInputPriceWei: "1e9"}})},
			{"empty", b([]byte{})},
		},
	}
}

func marshalDetTB(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatalf("marshal %T: %v", m, err)
	}
	return out
}

func editEnvelopeTB(tb testing.TB, raw []byte, edit func(*recordpb.Envelope)) []byte {
	tb.Helper()
	var env recordpb.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		tb.Fatalf("unmarshal envelope: %v", err)
	}
	edit(&env)
	out, err := proto.Marshal(&env)
	if err != nil {
		tb.Fatalf("marshal envelope: %v", err)
	}
	return out
}

// corpusFile encodes values in the "go test fuzz v1" format that `go test`
// reads from testdata/fuzz/<FuzzName>/.
func corpusFile(args []any) []byte {
	var buf bytes.Buffer
	buf.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&buf, "[]byte(%q)\n", v)
		case bool:
			fmt.Fprintf(&buf, "bool(%v)\n", v)
		default:
			panic(fmt.Sprintf("corpusFile: unsupported %T", a))
		}
	}
	return buf.Bytes()
}

// TestFuzzSeedCorpus keeps the committed seeds in step with fuzzSeeds. Run
//
//	go test ./protocol/ -run TestFuzzSeedCorpus -update-fuzz-seeds
//
// after changing the seeds; crashers found by fuzzing live next to them
// under their own names and are left alone.
func TestFuzzSeedCorpus(t *testing.T) {
	for target, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			path := filepath.Join(dir, "seed-"+s.name)
			want := corpusFile(s.args)
			if *updateSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("seed %s is missing, so CI does not run it (regenerate with -update-fuzz-seeds): %v", path, err)
				continue
			}
			if !strings.HasPrefix(string(got), "go test fuzz v1\n") {
				t.Errorf("seed %s is not in the go test fuzz v1 format", path)
			}
		}
	}
}
