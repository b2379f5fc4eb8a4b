package validator

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
)

// Each rule's error gets the verdict the rule list names: what an honest
// relay may forward is ignored, anything a sender is to blame for is
// rejected (and costs it GossipSub score).
func TestVerdicts(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want pubsub.ValidationResult
	}{
		{nil, pubsub.ValidationAccept},
		{lp.Errorf(lp.ErrReplay.Code, "replay"), pubsub.ValidationIgnore},
		{lp.Errorf(lp.ErrExpired.Code, "old"), pubsub.ValidationIgnore},
		{lp.Errorf(lp.ErrRegistryFull.Code, "full"), pubsub.ValidationIgnore},
		{fmt.Errorf("%w: %w", registry.ErrOverBudget, lp.Errorf(lp.ErrModelLimitExceeded.Code, "big")), pubsub.ValidationIgnore},
		{lp.Errorf(lp.ErrModelLimitExceeded.Code, "65 models"), pubsub.ValidationReject},
		{lp.Errorf(lp.ErrInvalidSignature.Code, "forged"), pubsub.ValidationReject},
		{lp.Errorf(lp.ErrMalformed.Code, "garbage"), pubsub.ValidationReject},
		{lp.Errorf(lp.ErrUnsupportedVersion.Code, "v2"), pubsub.ValidationReject},
		{errors.New("anything else"), pubsub.ValidationReject},
	} {
		if got := verdictOf(tt.err); got != tt.want {
			t.Errorf("verdictOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// The address the diversity rule counts is the connection's first IP: a
// relayed connection counts as the relay's.
func TestObservedIP(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"/ip4/192.0.2.7/tcp/4001", "192.0.2.7"},
		{"/ip6/2001:db8::1/udp/4001/quic-v1", "2001:db8::1"},
		{"/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit", "198.51.100.1"},
	} {
		if got := observedIP(ma.StringCast(tt.addr)); got != netip.MustParseAddr(tt.want) {
			t.Errorf("observedIP(%s) = %v, want %s", tt.addr, got, tt.want)
		}
	}
	if got := observedIP(ma.StringCast("/dns4/example.com/tcp/1")); got.IsValid() {
		t.Errorf("observedIP of a DNS address = %v, want none", got)
	}
}
