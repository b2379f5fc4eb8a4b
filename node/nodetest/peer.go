package nodetest

import (
	"context"

	"fmt"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/validator"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Peer is a bare libp2p node on the lloom topic with lloom's GossipSub
// settings but no topic validator, so it publishes anything: a stand-in
// for another implementation, or an attacker.
type Peer struct {
	Key   crypto.PrivKey
	Host  host.Host
	Topic *pubsub.Topic
}

// NewPeer starts a bare peer connected to validators vs.
func NewPeer(t testing.TB, vs ...*validator.Validator) *Peer {
	t.Helper()
	key := Key(t)
	h, err := node.NewHost(node.HostConfig{Key: key, Listen: Loopback(), UserAgent: "nodetest"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	// An attacker is not bound by our 64 KiB limit.
	g, err := node.JoinRaw(h, lp.DefaultNetwork, pubsub.WithMaxMessageSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	topic := g.Topic
	p := &Peer{Key: key, Host: h, Topic: topic}
	for _, v := range vs {
		if err := h.Connect(context.Background(), peer.AddrInfo{ID: v.ID(), Addrs: v.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, "validators in the peer's topic view", func() error {
		if n := len(topic.ListPeers()); n < len(vs) {
			return fmt.Errorf("%d topic peers, want %d", n, len(vs))
		}
		return nil
	})
	return p
}

// ID is the peer's id.
func (p *Peer) ID() peer.ID { return p.Host.ID() }

// Publish publishes raw data on the topic.
func (p *Peer) Publish(t testing.TB, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := p.Topic.Publish(ctx, data); err != nil {
		t.Fatal(err)
	}
}

// Announcement returns an announcement by this peer's key, with its
// listen addresses, so that a validator can reach it to check it.
func (p *Peer) Announcement(seq uint64, issued time.Time, models ...*pb.ModelDescriptor) *pb.Announcement {
	var addrs [][]byte
	for _, a := range p.Host.Addrs() {
		addrs = append(addrs, a.Bytes())
	}
	return &pb.Announcement{
		ExecutorId:      []byte(p.ID()),
		Seq:             seq,
		Kind:            pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL,
		Models:          models,
		Addrs:           addrs,
		IssuedAtMs:      issued.UnixMilli(),
		ProtocolVersion: lp.Version,
	}
}

// Heartbeat returns a heartbeat by this peer's key.
func (p *Peer) Heartbeat(seq, annSeq uint64, issued time.Time) *pb.Heartbeat {
	return &pb.Heartbeat{ExecutorId: []byte(p.ID()), Seq: seq, AnnouncementSeq: annSeq, IssuedAtMs: issued.UnixMilli(), Load: &pb.Load{}}
}

// SealAnnouncement signs a with the peer's key and wraps it for the topic.
func (p *Peer) SealAnnouncement(t testing.TB, a *pb.Announcement) (env, msg []byte) {
	t.Helper()
	env, err := lp.SealAnnouncement(a, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	msg, err = node.EncodeAnnouncement(env)
	if err != nil {
		t.Fatal(err)
	}
	return env, msg
}

// SealHeartbeat signs h with the peer's key and wraps it for the topic.
func (p *Peer) SealHeartbeat(t testing.TB, h *pb.Heartbeat) []byte {
	t.Helper()
	env, err := lp.SealHeartbeat(h, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := node.EncodeHeartbeat(env)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// ServePull answers announcement pulls with env, which makes the peer pass
// a validator's liveness check (DESIGN §10) as the executor of env.
func (p *Peer) ServePull(env []byte) {
	node.Serve(p.Host, lp.AnnouncementProtocol, 16, 5*time.Second, func(context.Context, peer.ID, []byte, error) ([]byte, error) {
		return env, nil
	})
}
