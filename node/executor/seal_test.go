package executor

import (
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/protocol/pb"
)

// An announcement that every validator would refuse is not handed to
// GossipSub, whose own refusal says only "validation failed": the error
// names the check that failed.
func TestSealNamesTheFailedCheck(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Key = key
	cfg.Listen = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	cfg.Models = []*pb.ModelDescriptor{{ModelId: "m", Capacity: 1, Available: true}}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Validate refuses this at start; here it stands for any value that
	// got past it.
	e.cfg.EVMAddress = "0x123"
	_, _, err = e.seal(pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL)
	if err == nil || !strings.Contains(err.Error(), `evm_address "0x123": want 0x and 40 hex digits`) {
		t.Fatalf("sealing an announcement with evm_address 0x123: %v, want an error naming that check", err)
	}
}
