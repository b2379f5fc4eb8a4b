package protocol_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// foreignRecord seals arbitrary payload bytes under any domain and payload
// type, to build envelopes that SealAnnouncement would refuse to make.
type foreignRecord struct {
	domain  string
	codec   []byte
	payload []byte
}

func (r *foreignRecord) Domain() string                 { return r.domain }
func (r *foreignRecord) Codec() []byte                  { return r.codec }
func (r *foreignRecord) MarshalRecord() ([]byte, error) { return r.payload, nil }
func (r *foreignRecord) UnmarshalRecord(b []byte) error { r.payload = b; return nil }

func sealForeign(t testing.TB, r record.Record, key crypto.PrivKey) []byte {
	t.Helper()
	env, err := record.Seal(r, key)
	if err != nil {
		t.Fatalf("record.Seal: %v", err)
	}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatalf("envelope marshal: %v", err)
	}
	return raw
}

func marshalDet(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return b
}

// editEnvelope decodes an envelope's protobuf, lets edit change it, and
// encodes it again, leaving the signature as it was.
func editEnvelope(t *testing.T, raw []byte, edit func(*recordpb.Envelope)) []byte {
	t.Helper()
	var env recordpb.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		t.Fatalf("unmarshal envelope: %v", err)
	}
	edit(&env)
	out, err := proto.Marshal(&env)
	if err != nil {
		t.Fatalf("marshal envelope: %v", err)
	}
	return out
}

func TestAnnouncementRoundTrip(t *testing.T) {
	key, id := testKey(t, 1)
	removal := validAnnouncement(t, id)
	removal.Kind = pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL
	removal.Models = nil
	minimal := &pb.Announcement{
		ExecutorId:      []byte(id),
		Seq:             1,
		Kind:            pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE,
		IssuedAtMs:      1,
		ProtocolVersion: 1,
	}
	for _, tc := range []struct {
		name string
		a    *pb.Announcement
	}{
		{"initial", validAnnouncement(t, id)},
		{"removal", removal},
		{"minimal update", minimal},
	} {
		raw := sealAnnouncement(t, tc.a, key)
		s, err := protocol.OpenAnnouncement(raw)
		if err != nil {
			t.Errorf("%s: a correctly sealed announcement is refused: %v", tc.name, err)
			continue
		}
		if !proto.Equal(s.Announcement(), tc.a) {
			t.Errorf("%s: opened announcement %v, want what was sealed %v", tc.name, s.Announcement(), tc.a)
		}
		if s.Signer() != id {
			t.Errorf("%s: signer %s, want the executor %s", tc.name, s.Signer(), id)
		}
		if !bytes.Equal(s.Raw(), raw) {
			t.Errorf("%s: Raw is not the envelope as received, so a validator would pass on other bytes", tc.name)
		}
	}
}

func TestSealDoesNotChangeItsInput(t *testing.T) {
	key, id := testKey(t, 1)
	a := validAnnouncement(t, id)
	before := proto.Clone(a)
	sealAnnouncement(t, a, key)
	if !proto.Equal(a, before) {
		t.Errorf("SealAnnouncement changed the caller's announcement: %v, was %v", a, before)
	}
}

func TestHeartbeatRoundTrip(t *testing.T) {
	key, id := testKey(t, 2)
	bare := &pb.Heartbeat{ExecutorId: []byte(id), Seq: 1, IssuedAtMs: 1}
	for _, tc := range []struct {
		name string
		h    *pb.Heartbeat
	}{
		{"with load", validHeartbeat(id)},
		{"without load", bare},
	} {
		raw := sealHeartbeat(t, tc.h, key)
		s, err := protocol.OpenHeartbeat(raw)
		if err != nil {
			t.Errorf("%s: a correctly sealed heartbeat is refused: %v", tc.name, err)
			continue
		}
		if !proto.Equal(s.Heartbeat(), tc.h) {
			t.Errorf("%s: opened heartbeat %v, want what was sealed %v", tc.name, s.Heartbeat(), tc.h)
		}
		if s.Signer() != id {
			t.Errorf("%s: signer %s, want the executor %s", tc.name, s.Signer(), id)
		}
	}
}

func TestSealWithAnotherExecutorsKeyFails(t *testing.T) {
	keyA, _ := testKey(t, 1)
	_, idB := testKey(t, 2)
	if raw, err := protocol.SealAnnouncement(validAnnouncement(t, idB), keyA); err == nil {
		t.Errorf("SealAnnouncement signed %d bytes for executor B with A's key, want an error", len(raw))
	}
	if raw, err := protocol.SealHeartbeat(validHeartbeat(idB), keyA); err == nil {
		t.Errorf("SealHeartbeat signed %d bytes for executor B with A's key, want an error", len(raw))
	}
	if raw, err := protocol.SealAnnouncement(&pb.Announcement{}, keyA); err == nil {
		t.Errorf("SealAnnouncement signed %d bytes with no executor_id, want an error", len(raw))
	}
}

// TestOpenRefuses covers every way an envelope can be wrong. decodeCode is
// what the cheap DecodeX half says (0: it passes and only the signature
// check catches it); openCode is what OpenX says.
func TestOpenRefuses(t *testing.T) {
	keyA, idA := testKey(t, 1)
	_, idB := testKey(t, 2)
	ann := validAnnouncement(t, idA)
	annRaw := sealAnnouncement(t, ann, keyA)
	hbRaw := sealHeartbeat(t, validHeartbeat(idA), keyA)

	tamperedSeq := func() []byte {
		a := proto.Clone(ann).(*pb.Announcement)
		a.Seq++
		return editEnvelope(t, annRaw, func(e *recordpb.Envelope) { e.Payload = marshalDet(t, a) })
	}
	flippedByte := editEnvelope(t, annRaw, func(e *recordpb.Envelope) {
		// The payload ends with agent_version "lloom/0.1.0": 0 → 1 still decodes.
		if e.Payload[len(e.Payload)-1] != '0' {
			t.Fatalf("payload does not end with agent_version")
		}
		e.Payload[len(e.Payload)-1] = '1'
	})
	flippedSig := editEnvelope(t, annRaw, func(e *recordpb.Envelope) { e.Signature[0] ^= 1 })
	noSig := editEnvelope(t, annRaw, func(e *recordpb.Envelope) { e.Signature = nil })

	// Signed by A, claiming to be B: record.Seal bypasses SealAnnouncement's check.
	claimB := &protocol.AnnouncementRecord{}
	proto.Merge(&claimB.Announcement, validAnnouncement(t, idB))
	impersonation := sealForeign(t, claimB, keyA)
	hbClaimB := &protocol.HeartbeatRecord{}
	proto.Merge(&hbClaimB.Heartbeat, validHeartbeat(idB))
	hbImpersonation := sealForeign(t, hbClaimB, keyA)

	// A valid announcement payload, signed under the heartbeat domain.
	wrongDomain := sealForeign(t, &foreignRecord{protocol.HeartbeatDomain, protocol.AnnouncementPayloadType, marshalDet(t, ann)}, keyA)
	otherDomain := sealForeign(t, &foreignRecord{"libp2p-peer-record", protocol.AnnouncementPayloadType, marshalDet(t, ann)}, keyA)
	hbWrongDomain := sealForeign(t, &foreignRecord{protocol.AnnouncementDomain, protocol.HeartbeatPayloadType, marshalDet(t, validHeartbeat(idA))}, keyA)

	// A payload that is not an Announcement at all.
	garbagePayload := sealForeign(t, &foreignRecord{protocol.AnnouncementDomain, protocol.AnnouncementPayloadType, []byte{0x0f, 0xff}}, keyA)
	// A payload that decodes but breaks a limit.
	v2 := proto.Clone(ann).(*pb.Announcement)
	v2.ProtocolVersion = 2
	newerVersion := sealForeign(t, &foreignRecord{protocol.AnnouncementDomain, protocol.AnnouncementPayloadType, marshalDet(t, v2)}, keyA)

	const (
		ok   = 0
		sig  = 1001
		malf = 3002
		vers = 3001
	)
	open := map[string]func([]byte) error{
		"announcement": func(b []byte) error { _, err := protocol.OpenAnnouncement(b); return err },
		"heartbeat":    func(b []byte) error { _, err := protocol.OpenHeartbeat(b); return err },
	}
	decode := map[string]func([]byte) error{
		"announcement": func(b []byte) error { _, err := protocol.DecodeAnnouncement(b); return err },
		"heartbeat":    func(b []byte) error { _, err := protocol.DecodeHeartbeat(b); return err },
	}
	for _, tc := range []struct {
		name       string
		as         string
		raw        []byte
		decodeCode int32
		openCode   int32
	}{
		{"payload changed after signing (seq+1)", "announcement", tamperedSeq(), ok, sig},
		{"one payload byte flipped", "announcement", flippedByte, ok, sig},
		{"one signature bit flipped", "announcement", flippedSig, ok, sig},
		{"signature removed", "announcement", noSig, ok, sig},
		{"signed by A claiming executor_id B", "announcement", impersonation, sig, sig},
		{"heartbeat signed by A claiming executor_id B", "heartbeat", hbImpersonation, sig, sig},
		{"announcement signed under the heartbeat domain", "announcement", wrongDomain, ok, sig},
		{"announcement signed under the peer-record domain", "announcement", otherDomain, ok, sig},
		{"heartbeat signed under the announcement domain", "heartbeat", hbWrongDomain, ok, sig},
		{"heartbeat envelope opened as an announcement", "announcement", hbRaw, malf, malf},
		{"announcement envelope opened as a heartbeat", "heartbeat", annRaw, malf, malf},
		{"payload is not an Announcement", "announcement", garbagePayload, malf, malf},
		{"protocol_version 2 inside a valid envelope", "announcement", newerVersion, vers, vers},
		{"not an envelope", "announcement", []byte("hello"), malf, malf},
		{"empty input", "announcement", nil, malf, malf},
		{"envelope cut short", "announcement", annRaw[:len(annRaw)/2], malf, malf},
	} {
		if got := code(decode[tc.as](tc.raw)); got != tc.decodeCode {
			t.Errorf("%s: Decode gives code %d (%v), want %d", tc.name, got, decode[tc.as](tc.raw), tc.decodeCode)
		}
		err := open[tc.as](tc.raw)
		if got := code(err); got != tc.openCode {
			t.Errorf("%s: Open gives code %d (%v), want %d", tc.name, got, err, tc.openCode)
		}
		if tc.openCode == sig && !errors.Is(err, protocol.ErrInvalidSignature) {
			t.Errorf("%s: Open error %v does not match ErrInvalidSignature", tc.name, err)
		}
	}
}

// bigAnnouncement seals a valid announcement padded with an unknown field
// (which proto3 keeps) so that the envelope is exactly size bytes.
func bigAnnouncement(t *testing.T, size int) []byte {
	t.Helper()
	key, id := testKey(t, 1)
	base := marshalDet(t, validAnnouncement(t, id))
	pad := size
	for range 8 {
		payload := protowire.AppendBytes(protowire.AppendTag(bytes.Clone(base), 1000, protowire.BytesType), make([]byte, pad))
		raw := sealForeign(t, &foreignRecord{protocol.AnnouncementDomain, protocol.AnnouncementPayloadType, payload}, key)
		if len(raw) == size {
			return raw
		}
		pad += size - len(raw)
	}
	t.Fatalf("could not build an envelope of exactly %d bytes", size)
	return nil
}

func TestEnvelopeSizeLimit(t *testing.T) {
	atLimit := bigAnnouncement(t, protocol.MaxGossipMessageSize)
	if _, err := protocol.OpenAnnouncement(atLimit); err != nil {
		t.Errorf("an announcement envelope of exactly %d bytes is refused: %v", len(atLimit), err)
	}
	over := bigAnnouncement(t, protocol.MaxGossipMessageSize+1)
	_, err := protocol.OpenAnnouncement(over)
	if !errors.Is(err, protocol.ErrMalformed) || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("an otherwise valid announcement envelope of %d bytes gave %v, want ErrMalformed for its size", len(over), err)
	}
	_, err = protocol.OpenHeartbeat(over)
	if !errors.Is(err, protocol.ErrMalformed) || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("a %d-byte envelope opened as a heartbeat gave %v, want ErrMalformed for its size", len(over), err)
	}
}

// Any program linking package protocol can open lloom envelopes through
// go-libp2p's record registry.
func TestRegisteredWithRecordRegistry(t *testing.T) {
	key, id := testKey(t, 1)
	a := validAnnouncement(t, id)
	_, rec, err := record.ConsumeEnvelope(sealAnnouncement(t, a, key), protocol.AnnouncementDomain)
	if err != nil {
		t.Fatalf("record.ConsumeEnvelope of an announcement: %v", err)
	}
	ar, ok := rec.(*protocol.AnnouncementRecord)
	if !ok {
		t.Fatalf("record.ConsumeEnvelope returned %T, want *protocol.AnnouncementRecord", rec)
	}
	if !proto.Equal(&ar.Announcement, a) {
		t.Errorf("record registry decoded %v, want %v", &ar.Announcement, a)
	}

	h := validHeartbeat(id)
	_, rec, err = record.ConsumeEnvelope(sealHeartbeat(t, h, key), protocol.HeartbeatDomain)
	if err != nil {
		t.Fatalf("record.ConsumeEnvelope of a heartbeat: %v", err)
	}
	hr, ok := rec.(*protocol.HeartbeatRecord)
	if !ok {
		t.Fatalf("record.ConsumeEnvelope returned %T, want *protocol.HeartbeatRecord", rec)
	}
	if !proto.Equal(&hr.Heartbeat, h) {
		t.Errorf("record registry decoded %v, want %v", &hr.Heartbeat, h)
	}
}

// The signed bytes are those of go-libp2p's envelope: domain, payload type
// and payload, each prefixed with its uvarint length. docs/PROTOCOL.md
// describes this construction for other implementations; this test holds
// the document to the code.
func TestSignedBytesConstruction(t *testing.T) {
	key, id := testKey(t, 1)
	raw := sealAnnouncement(t, validAnnouncement(t, id), key)
	var env recordpb.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		t.Fatalf("unmarshal envelope: %v", err)
	}
	if !bytes.Equal(env.PayloadType, protocol.AnnouncementPayloadType) {
		t.Errorf("payload_type %q, want %q", env.PayloadType, protocol.AnnouncementPayloadType)
	}
	var signed []byte
	for _, f := range [][]byte{[]byte(protocol.AnnouncementDomain), env.PayloadType, env.Payload} {
		signed = protowire.AppendBytes(signed, f)
	}
	pub, err := crypto.UnmarshalPublicKey(marshalDet(t, env.PublicKey))
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	okSig, err := pub.Verify(signed, env.Signature)
	if err != nil || !okSig {
		t.Errorf("signature does not verify over uvarint-prefixed domain|payload_type|payload (ok=%v, err=%v)", okSig, err)
	}
}

// Executors may use any key type libp2p supports; RSA and ECDSA peer ids
// are sha2-256 multihashes, Ed25519 and secp256k1 ones identity multihashes.
func TestKeyTypesRoundTrip(t *testing.T) {
	for _, kt := range []struct {
		name string
		typ  int
		bits int
	}{
		{"Ed25519", crypto.Ed25519, -1},
		{"Secp256k1", crypto.Secp256k1, -1},
		{"ECDSA", crypto.ECDSA, -1},
		{"RSA-2048", crypto.RSA, 2048},
	} {
		key, _, err := crypto.GenerateKeyPair(kt.typ, kt.bits)
		if err != nil {
			t.Fatalf("%s: generate: %v", kt.name, err)
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			t.Fatalf("%s: peer id: %v", kt.name, err)
		}
		a := validAnnouncement(t, id)
		s, err := protocol.OpenAnnouncement(sealAnnouncement(t, a, key))
		if err != nil {
			t.Errorf("%s: an executor with this key type cannot announce: %v", kt.name, err)
		} else if s.Signer() != id || !proto.Equal(s.Announcement(), a) {
			t.Errorf("%s: opened (%s, %v), want (%s, %v)", kt.name, s.Signer(), s.Announcement(), id, a)
		}
		if _, err := protocol.OpenHeartbeat(sealHeartbeat(t, validHeartbeat(id), key)); err != nil {
			t.Errorf("%s: an executor with this key type cannot send heartbeats: %v", kt.name, err)
		}
	}
}
