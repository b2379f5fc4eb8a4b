package node

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"
)

func loopbackHost(t *testing.T) host.Host {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(HostConfig{Key: key, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// A peer that is not a bootstrap peer coming and going (a client after
// its answer) must not wake the connector: it once re-queued the wake-up
// for itself and spun a core for as long as the node ran.
func TestConnectorIgnoresOtherPeersLeaving(t *testing.T) {
	validator, node, client := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	c := NewConnector(node, []BootstrapPeer{{Raw: "v", ID: validator.ID(), Addr: validator.Addrs()[0]}}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for len(node.Network().ConnsToPeer(validator.ID())) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("connector never reached the bootstrap peer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := client.Connect(ctx, peer.AddrInfo{ID: node.ID(), Addrs: node.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := client.Network().ClosePeer(node.ID()); err != nil {
		t.Fatal(err)
	}
	before := c.checks.Load()
	time.Sleep(500 * time.Millisecond) // measuring a rate: checks over a fixed window
	if n := c.checks.Load() - before; n > 2 {
		t.Fatalf("%d connection checks in 500ms after an unrelated peer left; the connector is spinning", n)
	}
}
