package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol/pb"
)

// AnnouncementRecord adapts an Announcement to go-libp2p's record.Record so
// that it can be sealed in, and opened from, a signed envelope.
type AnnouncementRecord struct{ pb.Announcement }

func (*AnnouncementRecord) Domain() string { return AnnouncementDomain }
func (*AnnouncementRecord) Codec() []byte  { return AnnouncementPayloadType }
func (r *AnnouncementRecord) MarshalRecord() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&r.Announcement)
}
func (r *AnnouncementRecord) UnmarshalRecord(b []byte) error {
	return proto.Unmarshal(b, &r.Announcement)
}

// HeartbeatRecord adapts a Heartbeat to record.Record.
type HeartbeatRecord struct{ pb.Heartbeat }

func (*HeartbeatRecord) Domain() string { return HeartbeatDomain }
func (*HeartbeatRecord) Codec() []byte  { return HeartbeatPayloadType }
func (r *HeartbeatRecord) MarshalRecord() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&r.Heartbeat)
}
func (r *HeartbeatRecord) UnmarshalRecord(b []byte) error {
	return proto.Unmarshal(b, &r.Heartbeat)
}

// The contract registers both payload types with go-libp2p, so that
// record.ConsumeEnvelope in any program linking this package understands
// them. go-libp2p's own peer record registers itself the same way.
func init() {
	record.RegisterType(&AnnouncementRecord{})
	record.RegisterType(&HeartbeatRecord{})
}

// SealAnnouncement signs a in an envelope with key, whose peer id must be
// a's executor_id, and returns the envelope's bytes.
func SealAnnouncement(a *pb.Announcement, key crypto.PrivKey) ([]byte, error) {
	r := &AnnouncementRecord{}
	proto.Merge(&r.Announcement, a)
	return seal(r, a.GetExecutorId(), key)
}

// SealHeartbeat signs h in an envelope with key and returns its bytes.
func SealHeartbeat(h *pb.Heartbeat, key crypto.PrivKey) ([]byte, error) {
	r := &HeartbeatRecord{}
	proto.Merge(&r.Heartbeat, h)
	return seal(r, h.GetExecutorId(), key)
}

func seal(r record.Record, executorID []byte, key crypto.PrivKey) ([]byte, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("protocol: seal: %w", err)
	}
	if !bytes.Equal([]byte(id), executorID) {
		return nil, fmt.Errorf("protocol: seal: key of %s cannot sign for another executor_id", id)
	}
	env, err := record.Seal(r, key)
	if err != nil {
		return nil, fmt.Errorf("protocol: seal: %w", err)
	}
	return env.Marshal()
}

// DecodedAnnouncement is an announcement envelope that decoded and passed
// every check but its signature's. Nothing in it is to be trusted: the
// registry accepts only a VerifiedAnnouncement, which Verify returns once
// the signature holds.
type DecodedAnnouncement struct {
	Raw          []byte // the envelope bytes as received
	Announcement *pb.Announcement
	Signer       peer.ID // derived from the envelope's public key
	signed       signed  // what Verify checks, kept from decoding
}

// DecodedHeartbeat is DecodedAnnouncement for heartbeats.
type DecodedHeartbeat struct {
	Raw       []byte
	Heartbeat *pb.Heartbeat
	Signer    peer.ID
	signed    signed
}

// signed is what an envelope's signature covers, as decoding found it, so
// that verifying needs neither a second parse of the envelope nor a second
// decoding of the payload (record.ConsumeTypedEnvelope does both).
type signed struct {
	key         crypto.PubKey
	payloadType []byte
	payload     []byte
	signature   []byte
}

// DecodeAnnouncement parses an announcement envelope and checks everything
// but the signature: payload type, decoding, signer = executor_id, and every
// field limit. It is the cheap first half of OpenAnnouncement.
func DecodeAnnouncement(raw []byte) (*DecodedAnnouncement, error) {
	a := &pb.Announcement{}
	signer, sig, err := decodeEnvelope(raw, AnnouncementPayloadType, a)
	if err != nil {
		return nil, err
	}
	if err := checkSigner(signer, a.GetExecutorId()); err != nil {
		return nil, err
	}
	if err := CheckAnnouncement(a); err != nil {
		return nil, err
	}
	return &DecodedAnnouncement{Raw: raw, Announcement: a, Signer: signer, signed: sig}, nil
}

// Verify checks the envelope's signature over the announcement domain and
// returns the announcement as verified. It is the only way to get one.
func (s *DecodedAnnouncement) Verify() (*VerifiedAnnouncement, error) {
	var err error
	if s.signed.key == nil { // not made by DecodeAnnouncement
		err = verify(s.Raw, &AnnouncementRecord{})
	} else {
		err = s.signed.verify(AnnouncementDomain)
	}
	if err != nil {
		return nil, err
	}
	return &VerifiedAnnouncement{raw: s.Raw, a: s.Announcement, signer: s.Signer}, nil
}

// OpenAnnouncement decodes, checks and verifies an announcement envelope.
func OpenAnnouncement(raw []byte) (*VerifiedAnnouncement, error) {
	s, err := DecodeAnnouncement(raw)
	if err != nil {
		return nil, err
	}
	return s.Verify()
}

// DecodeHeartbeat is DecodeAnnouncement for heartbeats.
func DecodeHeartbeat(raw []byte) (*DecodedHeartbeat, error) {
	h := &pb.Heartbeat{}
	signer, sig, err := decodeEnvelope(raw, HeartbeatPayloadType, h)
	if err != nil {
		return nil, err
	}
	if err := checkSigner(signer, h.GetExecutorId()); err != nil {
		return nil, err
	}
	if err := CheckHeartbeat(h); err != nil {
		return nil, err
	}
	return &DecodedHeartbeat{Raw: raw, Heartbeat: h, Signer: signer, signed: sig}, nil
}

// Verify checks the envelope's signature over the heartbeat domain and
// returns the heartbeat as verified. It is the only way to get one.
func (s *DecodedHeartbeat) Verify() (*VerifiedHeartbeat, error) {
	var err error
	if s.signed.key == nil { // not made by DecodeHeartbeat
		err = verify(s.Raw, &HeartbeatRecord{})
	} else {
		err = s.signed.verify(HeartbeatDomain)
	}
	if err != nil {
		return nil, err
	}
	return &VerifiedHeartbeat{raw: s.Raw, h: s.Heartbeat, signer: s.Signer}, nil
}

// OpenHeartbeat decodes, checks and verifies a heartbeat envelope.
func OpenHeartbeat(raw []byte) (*VerifiedHeartbeat, error) {
	s, err := DecodeHeartbeat(raw)
	if err != nil {
		return nil, err
	}
	return s.Verify()
}

// decodeEnvelope parses an envelope as record.UnmarshalEnvelope does,
// checks its payload type, decodes the payload into m and derives the
// signer, keeping what the signature check needs.
func decodeEnvelope(raw []byte, payloadType []byte, m proto.Message) (peer.ID, signed, error) {
	if len(raw) > MaxGossipMessageSize {
		return "", signed{}, Errorf(ErrMalformed.Code, "envelope of %d bytes exceeds %d", len(raw), MaxGossipMessageSize)
	}
	env, err := parseEnvelope(raw)
	if err != nil {
		return "", signed{}, Errorf(ErrMalformed.Code, "bad envelope: %v", err)
	}
	var pk cryptopb.PublicKey
	if err := proto.Unmarshal(env.key, &pk); err != nil {
		return "", signed{}, Errorf(ErrMalformed.Code, "bad envelope: %v", err)
	}
	key, err := crypto.PublicKeyFromProto(&pk)
	if err != nil {
		return "", signed{}, Errorf(ErrMalformed.Code, "bad envelope: %v", err)
	}
	if !bytes.Equal(env.payloadType, payloadType) {
		return "", signed{}, Errorf(ErrMalformed.Code, "envelope payload type %q, want %q", env.payloadType, payloadType)
	}
	if err := proto.Unmarshal(env.payload, m); err != nil {
		return "", signed{}, Errorf(ErrMalformed.Code, "bad %s payload: %v", payloadType, err)
	}
	signer, err := signerID(&pk, key)
	if err != nil {
		return "", signed{}, Errorf(ErrInvalidSignature.Code, "envelope key: %v", err)
	}
	return signer, signed{key: key, payloadType: env.payloadType, payload: env.payload, signature: env.signature}, nil
}

// envelopeFields are the fields of a record.pb.Envelope, pointing into the
// envelope's bytes; key is the public_key message's encoding.
type envelopeFields struct {
	key, payloadType, payload, signature []byte
}

// Field numbers of record.pb.Envelope.
const (
	envelopePublicKey   = 1
	envelopePayloadType = 2
	envelopePayload     = 3
	envelopeSignature   = 5
)

// parseEnvelope reads an envelope without copying it, as proto.Unmarshal
// would read it into a record.pb.Envelope: the last occurrence of a bytes
// field wins; occurrences of public_key merge, which decoding their
// concatenation does; unknown fields, and known ones of another wire type,
// are skipped. Every byte a validator receives passes here, so it saves
// the copies and the allocations of a generic decoding.
func parseEnvelope(b []byte) (envelopeFields, error) {
	var f envelopeFields
	var keys [][]byte // only when public_key comes more than once
	keyCount := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return f, protowire.ParseError(n)
		}
		b = b[n:]
		known := num == envelopePublicKey || num == envelopePayloadType || num == envelopePayload || num == envelopeSignature
		if !known || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return f, protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return f, protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case envelopePublicKey:
			if keyCount == 1 {
				keys = append(keys, f.key)
			}
			if keyCount > 0 {
				keys = append(keys, v)
			}
			f.key = v
			keyCount++
		case envelopePayloadType:
			f.payloadType = v
		case envelopePayload:
			f.payload = v
		case envelopeSignature:
			f.signature = v
		}
	}
	switch {
	case keyCount == 0:
		return f, errors.New("envelope has no public key")
	case keyCount > 1:
		f.key = bytes.Join(keys, nil)
	}
	return f, nil
}

// ed25519IDPrefix starts the peer id of every Ed25519 key: an identity
// multihash (0x00, length 36) of the key's protobuf encoding (type 1, then
// 32 bytes of data), which is what peer.IDFromPublicKey builds.
const ed25519IDPrefix = "\x00\x24\x08\x01\x12\x20"

// signerID is peer.IDFromPublicKey(key), without marshaling the key again
// for the common Ed25519 case. It builds the id from the decoded key's 32
// bytes, never from how the sender encoded them.
func signerID(pk *cryptopb.PublicKey, key crypto.PubKey) (peer.ID, error) {
	if pk.GetType() == cryptopb.KeyType_Ed25519 && peer.AdvancedEnableInlining {
		if raw, err := key.Raw(); err == nil && len(raw) == 32 {
			return peer.ID(ed25519IDPrefix + string(raw)), nil
		}
	}
	return peer.IDFromPublicKey(key)
}

// verify checks the signature over the domain, as record.Envelope does:
// the key signs uvarint-length-prefixed domain, payload type and payload.
func (s *signed) verify(domain string) error {
	n := 3*binary.MaxVarintLen64 + len(domain) + len(s.payloadType) + len(s.payload)
	bp := unsignedPool.Get().(*[]byte)
	b := (*bp)[:0]
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	b = binary.AppendUvarint(b, uint64(len(domain)))
	b = append(b, domain...)
	b = binary.AppendUvarint(b, uint64(len(s.payloadType)))
	b = append(b, s.payloadType...)
	b = binary.AppendUvarint(b, uint64(len(s.payload)))
	b = append(b, s.payload...)
	ok, err := s.key.Verify(b, s.signature)
	if cap(b) <= maxPooledUnsigned {
		*bp = b
		unsignedPool.Put(bp)
	}
	switch {
	case err != nil:
		return Errorf(ErrInvalidSignature.Code, "envelope signature: %v", err)
	case !ok:
		return Errorf(ErrInvalidSignature.Code, "envelope signature: %v", record.ErrInvalidSignature)
	}
	return nil
}

// unsignedPool holds the buffers that the signed bytes are assembled in;
// one the size of a largest envelope is kept at most.
var unsignedPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledUnsigned = MaxGossipMessageSize + 256

func checkSigner(signer peer.ID, executorID []byte) error {
	if !bytes.Equal([]byte(signer), executorID) {
		return Errorf(ErrInvalidSignature.Code, "envelope signed by %s for another executor_id", signer)
	}
	return nil
}

func verify(raw []byte, r record.Record) error {
	if _, err := record.ConsumeTypedEnvelope(raw, r); err != nil {
		return Errorf(ErrInvalidSignature.Code, "envelope signature: %v", err)
	}
	return nil
}
