package protocol

import (
	"bytes"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
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

// SignedAnnouncement is a decoded announcement envelope. Until Verify
// returns nil, nothing in it is to be trusted.
type SignedAnnouncement struct {
	Raw          []byte // the envelope bytes as received
	Announcement *pb.Announcement
	Signer       peer.ID // derived from the envelope's public key
}

// SignedHeartbeat is a decoded heartbeat envelope.
type SignedHeartbeat struct {
	Raw       []byte
	Heartbeat *pb.Heartbeat
	Signer    peer.ID
}

// DecodeAnnouncement parses an announcement envelope and checks everything
// but the signature: payload type, decoding, signer = executor_id, and every
// field limit. It is the cheap first half of OpenAnnouncement.
func DecodeAnnouncement(raw []byte) (*SignedAnnouncement, error) {
	a := &pb.Announcement{}
	signer, err := decodeEnvelope(raw, AnnouncementPayloadType, a)
	if err != nil {
		return nil, err
	}
	if err := checkSigner(signer, a.GetExecutorId()); err != nil {
		return nil, err
	}
	if err := CheckAnnouncement(a); err != nil {
		return nil, err
	}
	return &SignedAnnouncement{Raw: raw, Announcement: a, Signer: signer}, nil
}

// Verify checks the envelope's signature over the announcement domain.
func (s *SignedAnnouncement) Verify() error {
	return verify(s.Raw, &AnnouncementRecord{})
}

// OpenAnnouncement decodes, checks and verifies an announcement envelope.
func OpenAnnouncement(raw []byte) (*SignedAnnouncement, error) {
	s, err := DecodeAnnouncement(raw)
	if err != nil {
		return nil, err
	}
	if err := s.Verify(); err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeHeartbeat is DecodeAnnouncement for heartbeats.
func DecodeHeartbeat(raw []byte) (*SignedHeartbeat, error) {
	h := &pb.Heartbeat{}
	signer, err := decodeEnvelope(raw, HeartbeatPayloadType, h)
	if err != nil {
		return nil, err
	}
	if err := checkSigner(signer, h.GetExecutorId()); err != nil {
		return nil, err
	}
	if err := CheckHeartbeat(h); err != nil {
		return nil, err
	}
	return &SignedHeartbeat{Raw: raw, Heartbeat: h, Signer: signer}, nil
}

// Verify checks the envelope's signature over the heartbeat domain.
func (s *SignedHeartbeat) Verify() error {
	return verify(s.Raw, &HeartbeatRecord{})
}

// OpenHeartbeat decodes, checks and verifies a heartbeat envelope.
func OpenHeartbeat(raw []byte) (*SignedHeartbeat, error) {
	s, err := DecodeHeartbeat(raw)
	if err != nil {
		return nil, err
	}
	if err := s.Verify(); err != nil {
		return nil, err
	}
	return s, nil
}

func decodeEnvelope(raw []byte, payloadType []byte, m proto.Message) (peer.ID, error) {
	if len(raw) > MaxGossipMessageSize {
		return "", Errorf(ErrMalformed.Code, "envelope of %d bytes exceeds %d", len(raw), MaxGossipMessageSize)
	}
	env, err := record.UnmarshalEnvelope(raw)
	if err != nil {
		return "", Errorf(ErrMalformed.Code, "bad envelope: %v", err)
	}
	if !bytes.Equal(env.PayloadType, payloadType) {
		return "", Errorf(ErrMalformed.Code, "envelope payload type %q, want %q", env.PayloadType, payloadType)
	}
	if err := proto.Unmarshal(env.RawPayload, m); err != nil {
		return "", Errorf(ErrMalformed.Code, "bad %s payload: %v", payloadType, err)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return "", Errorf(ErrInvalidSignature.Code, "envelope key: %v", err)
	}
	return signer, nil
}

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
