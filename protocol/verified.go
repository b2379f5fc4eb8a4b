package protocol

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

// VerifiedAnnouncement is an announcement whose envelope decoded, passed
// every field limit and carries a valid signature by its executor_id. Only
// DecodedAnnouncement.Verify and OpenAnnouncement make one, so a function
// that takes it (the registry's) cannot be handed an unchecked message; its
// fields are unexported for that reason. The zero value holds nothing and
// is refused wherever a verified announcement is required.
//
// Verified says who signed, not that the signer is reachable or that the
// message is fresh: freshness and sequence are the validator's rules
// (DESIGN §4), liveness the admission's (§10).
type VerifiedAnnouncement struct {
	raw    []byte
	a      *pb.Announcement
	signer peer.ID
}

// Raw is the envelope's bytes as received; callers must not modify them.
func (v *VerifiedAnnouncement) Raw() []byte { return v.raw }

// Announcement is the decoded announcement; callers must not modify it.
func (v *VerifiedAnnouncement) Announcement() *pb.Announcement { return v.a }

// Signer is the executor that signed, equal to its executor_id.
func (v *VerifiedAnnouncement) Signer() peer.ID { return v.signer }

// Valid reports whether v was made by verifying an envelope (not the zero
// value).
func (v *VerifiedAnnouncement) Valid() bool { return v != nil && v.a != nil && v.signer != "" }

// VerifiedHeartbeat is VerifiedAnnouncement for heartbeats: only
// DecodedHeartbeat.Verify and OpenHeartbeat make one.
type VerifiedHeartbeat struct {
	raw    []byte
	h      *pb.Heartbeat
	signer peer.ID
}

// Raw is the envelope's bytes as received; callers must not modify them.
func (v *VerifiedHeartbeat) Raw() []byte { return v.raw }

// Heartbeat is the decoded heartbeat; callers must not modify it.
func (v *VerifiedHeartbeat) Heartbeat() *pb.Heartbeat { return v.h }

// Signer is the executor that signed, equal to its executor_id.
func (v *VerifiedHeartbeat) Signer() peer.ID { return v.signer }

// Valid reports whether v was made by verifying an envelope.
func (v *VerifiedHeartbeat) Valid() bool { return v != nil && v.h != nil && v.signer != "" }
