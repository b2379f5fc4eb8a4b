package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// contractModelID is the contract's rule for model ids, as a regular
// expression: the reference the fast check is held to.
var contractModelID = regexp.MustCompile(`^[A-Za-z0-9._:/@-]{1,128}$`)

// The checks' fast model id test must agree with the contract's regular
// expression on every input.
func TestModelIDCheckAgreesWithRegexp(t *testing.T) {
	id := []byte(peer.ID("\x00\x24\x08\x01\x12\x20" + strings.Repeat("k", 32)))
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "aZ09._:/@-+ é\x00\xff"
	cases := []string{"", "a", strings.Repeat("a", 128), strings.Repeat("a", 129), "llama3.2:3b", "hf.co/org/M@Q4", "a b", "é"}
	for range 20000 {
		b := make([]byte, rng.IntN(135))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		h := &pb.Heartbeat{ExecutorId: id, Seq: 1, IssuedAtMs: 1, Load: &pb.Load{Models: []*pb.ModelLoad{{ModelId: c}}}}
		want := contractModelID.MatchString(c)
		if got := lp.CheckHeartbeat(h) == nil; got != want {
			t.Fatalf("model id %q: CheckHeartbeat accepts it: %v; the contract: %v", c, got, want)
		}
		if got := lp.ValidModelID(c); got != want {
			t.Fatalf("model id %q: ValidModelID %v; the contract: %v", c, got, want)
		}
	}
}

// Decoding derives the signer without marshaling the key again; it must
// be the peer id that go-libp2p derives.
func TestSignerIsPeerIDOfKey(t *testing.T) {
	for _, x := range NewFleet(64, 99) {
		msg, err := x.Heartbeat(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		p, err := node.DecodeGossip(msg)
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.IDFromPublicKey(x.Key.GetPublic())
		if err != nil {
			t.Fatal(err)
		}
		if p.Heartbeat.Signer != want {
			t.Fatalf("signer %s, want %s", p.Heartbeat.Signer, want)
		}
		if _, err := p.Heartbeat.Verify(); err != nil {
			t.Fatal(err)
		}
	}
	// A key of another type still goes through go-libp2p.
	k, _, err := crypto.GenerateSecp256k1Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	env, err := lp.SealHeartbeat(&pb.Heartbeat{ExecutorId: []byte(id), Seq: 1, IssuedAtMs: 1}, k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := lp.OpenHeartbeat(env)
	if err != nil {
		t.Fatal(err)
	}
	if s.Signer() != id {
		t.Fatalf("secp256k1 signer %s, want %s", s.Signer(), id)
	}
}

// reference opens a heartbeat envelope the way the validator did before it
// parsed envelopes itself: go-libp2p's record.ConsumeTypedEnvelope, then
// the signer and field checks.
func reference(raw []byte) error {
	var rec lp.HeartbeatRecord
	env, err := record.ConsumeTypedEnvelope(raw, &rec)
	if err != nil {
		return err
	}
	id, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return err
	}
	if string(id) != string(rec.GetExecutorId()) {
		return errors.New("signer is not the executor")
	}
	return lp.CheckHeartbeat(&rec.Heartbeat)
}

// The validator parses envelopes without go-libp2p's decoder; it must
// accept exactly what that decoder and signature check accept, however
// the envelope's fields are encoded.
func TestEnvelopeParsingAgreesWithLibp2p(t *testing.T) {
	x := NewFleet(1, 5)[0]
	x.AnnSeq = 1
	msg, err := x.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var gm pb.GossipMessage
	if err := proto.Unmarshal(msg, &gm); err != nil {
		t.Fatal(err)
	}
	raw := gm.GetHeartbeatEnvelope()
	var env recordpb.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	field := func(b []byte, num protowire.Number, v []byte) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	key, err := proto.Marshal(env.GetPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	keyType := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(env.GetPublicKey().GetType()))
	keyData := field(nil, 2, env.GetPublicKey().GetData())
	build := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	pk, pt, pl, sg := field(nil, 1, key), field(nil, 2, env.GetPayloadType()), field(nil, 3, env.GetPayload()), field(nil, 5, env.GetSignature())
	variants := map[string][]byte{
		"as sealed":                       raw,
		"fields reordered":                build(sg, pl, pt, pk),
		"unknown fields":                  build(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 7), pk, pt, field(nil, 4, []byte("x")), pl, sg),
		"payload type repeated, last ok":  build(pk, field(nil, 2, []byte("/bogus")), pt, pl, sg),
		"payload type repeated, last bad": build(pk, pt, field(nil, 2, []byte("/bogus")), pl, sg),
		"signature repeated":              build(pk, pt, pl, field(nil, 5, []byte("short")), sg),
		"key split in two":                build(field(nil, 1, keyType), pt, field(nil, 1, keyData), pl, sg),
		"key data only":                   build(field(nil, 1, keyData), pt, pl, sg),
		"no key":                          build(pt, pl, sg),
		"payload as varint too":           build(pk, pt, pl, protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 1), sg),
		"truncated":                       raw[:len(raw)-1],
		"empty":                           {},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		b := bytes.Clone(raw)
		for range 1 + rng.IntN(3) {
			b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
		}
		variants[fmt.Sprintf("flipped %d", i)] = b
	}
	valid := []string{"as sealed", "fields reordered", "unknown fields", "payload type repeated, last ok", "key split in two", "payload as varint too"}
	for _, name := range valid {
		if err := reference(variants[name]); err != nil {
			t.Fatalf("%s: go-libp2p refuses the variant meant to be valid: %v", name, err)
		}
	}
	for name, b := range variants {
		_, got := lp.OpenHeartbeat(b)
		want := reference(b)
		if (got == nil) != (want == nil) {
			t.Errorf("%s: OpenHeartbeat: %v; go-libp2p: %v", name, got, want)
		}
	}
}
