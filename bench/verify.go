package bench

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"runtime"
	"time"

	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Signed is what an Ed25519 verification of one envelope needs: the key,
// the bytes signed and the signature.
type Signed struct {
	Key, Msg, Sig []byte
}

// Unseal takes a gossip message apart into what its envelope's signature
// covers, without checking anything: the input of the raw verification
// rate.
func Unseal(msg []byte) (Signed, error) {
	var gm pb.GossipMessage
	if err := proto.Unmarshal(msg, &gm); err != nil {
		return Signed{}, err
	}
	raw, domain := gm.GetAnnouncementEnvelope(), lp.AnnouncementDomain
	if raw == nil {
		raw, domain = gm.GetHeartbeatEnvelope(), lp.HeartbeatDomain
	}
	var env recordpb.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		return Signed{}, err
	}
	if len(env.GetPublicKey().GetData()) != ed25519.PublicKeySize {
		return Signed{}, fmt.Errorf("not an Ed25519 key")
	}
	var m []byte
	for _, f := range [][]byte{[]byte(domain), env.GetPayloadType(), env.GetPayload()} {
		m = binary.AppendUvarint(m, uint64(len(f)))
		m = append(m, f...)
	}
	return Signed{Key: env.GetPublicKey().GetData(), Msg: m, Sig: env.GetSignature()}, nil
}

// VerifyRate verifies ss round-robin with crypto/ed25519 on one locked OS
// thread for about d and returns verifications per second of that
// thread's CPU time: the raw verification bound of one core.
func VerifyRate(ss []Signed, d time.Duration) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu, start := ThreadCPUTime(), time.Now()
	n := 0
	for time.Since(start) < d || n < len(ss) {
		s := ss[n%len(ss)]
		if !ed25519.Verify(s.Key, s.Msg, s.Sig) {
			panic("bench: a fixture's signature does not verify")
		}
		n++
	}
	used := ThreadCPUTime() - cpu
	if used <= 0 {
		return 0
	}
	return float64(n) / used.Seconds()
}
