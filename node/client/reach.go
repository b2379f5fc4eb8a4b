package client

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/lloom/lloom/node"
)

// DefaultPunchWait bounds the wait for a hole punch before a request runs
// over the relay: a punch takes about one round trip through the relay
// and one direct; a failed one should not cost a chat more than this.
const DefaultPunchWait = 3 * time.Second

// Punch outcomes reported with an answer.
const (
	PunchNotNeeded = "not needed"
	PunchSucceeded = "succeeded"
	PunchFailed    = "failed"
	PunchOff       = "off"
)

// punchStats count the client's hole punches (lloom client stats).
type punchStats struct{ tried, succeeded atomic.Int64 }

var punches punchStats

// PunchStats returns how many hole punches this process waited for and
// how many gave a direct connection.
func PunchStats() (tried, succeeded int64) { return punches.tried.Load(), punches.succeeded.Load() }

func connectionKind(relayed bool) string {
	if relayed {
		return "relayed"
	}
	return "direct"
}

// hostConfig is the client's host: with hole punching on, it listens on
// port 0 (QUIC and TCP) so that a punch has a socket to punch from and
// identify learns the address the NAT gives it.
func (c Config) hostConfig() node.HostConfig {
	hc := node.HostConfig{Key: c.Key, Listen: c.Listen, UserAgent: "lloom-client", InferenceStreams: clientInferenceStreams}
	if c.PunchWait > 0 {
		hc.Reach = node.Reach{Role: node.ReachClient}
		if len(hc.Listen) == 0 {
			hc.Listen = []ma.Multiaddr{ma.StringCast("/ip4/0.0.0.0/udp/0/quic-v1"), ma.StringCast("/ip4/0.0.0.0/tcp/0")}
		}
	}
	return hc
}

// upgrade waits, up to PunchWait, for a relayed connection to p to gain a
// direct one. The executor starts the punch (DCUtR) once the relayed
// connection is identified; this side answers it and waits.
func (c *Client) upgrade(ctx context.Context, p peer.ID) string {
	if c.cfg.PunchWait <= 0 {
		return PunchOff
	}
	if hasDirect(c.h.Network().ConnsToPeer(p)) {
		return PunchNotNeeded
	}
	punches.tried.Add(1)
	t := time.NewTimer(c.cfg.PunchWait)
	defer t.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return PunchFailed
		case <-t.C:
			c.log.Info().Str("executor", p.String()).Dur("waited", c.cfg.PunchWait).
				Msg("Hole punch did not give a direct connection; the request runs over the relay (its data and duration limits apply)")
			return PunchFailed
		case <-tick.C:
			if hasDirect(c.h.Network().ConnsToPeer(p)) {
				punches.succeeded.Add(1)
				c.log.Debug().Str("executor", p.String()).Msg("Hole punch succeeded: direct connection")
				return PunchSucceeded
			}
		}
	}
}

// punchReadyWait bounds punchReady. go-libp2p looks for a public address
// of its own at 0, 0.25, 0.75, 1.75 and 3.75 s after the host starts.
const punchReadyWait = 2 * time.Second

// punchReady waits, up to punchReadyWait, before a relayed dial until this
// host answers hole punches. go-libp2p registers its DCUtR handler only
// once the host knows a public address of its own (the one a validator
// observed, polled with backoff after start), and the executor tries a
// punch once, right after our relayed connection is identified: a client
// behind NAT that dialed before that saw no punch at all (the executor
// logs "protocols not supported: [/libp2p/dcutr]"), so home-to-home chats
// stayed relayed. It waits only when the executor has no public direct
// address and this host talks to a validator at a public address (from
// which it learns its own); on loopback or a LAN it never waits.
func (c *Client) punchReady(ctx context.Context, addrs []ma.Multiaddr) {
	if c.cfg.PunchWait <= 0 || !needsRelay(addrs) || c.answersPunches() || !c.seesPublicPeer() {
		return
	}
	start := time.Now()
	t := time.NewTimer(punchReadyWait)
	defer t.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.log.Debug().Dur("waited", punchReadyWait).Msg("No public address of our own yet: the relayed request may not be upgraded by a hole punch")
			return
		case <-tick.C:
			if c.answersPunches() {
				c.log.Debug().Dur("waited", time.Since(start)).Msg("Ready to answer hole punches")
				return
			}
		}
	}
}

// answersPunches: the DCUtR handler is registered.
func (c *Client) answersPunches() bool {
	for _, p := range c.h.Mux().Protocols() {
		if p == holepunch.Protocol {
			return true
		}
	}
	return false
}

// seesPublicPeer: a direct connection to a peer at a public address exists
// (a validator, whose identify tells this host its public address).
func (c *Client) seesPublicPeer() bool {
	for _, cn := range c.h.Network().Conns() {
		if !cn.Stat().Limited && manet.IsPublicAddr(cn.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}

// needsRelay: addrs offer no public direct address, only relayed or
// private ones.
func needsRelay(addrs []ma.Multiaddr) bool {
	relayed := false
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			relayed = true
		} else if manet.IsPublicAddr(a) {
			return false
		}
	}
	return relayed
}

func hasDirect(conns []network.Conn) bool {
	for _, cn := range conns {
		if !cn.Stat().Limited {
			return true
		}
	}
	return false
}
