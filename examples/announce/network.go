package main

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/protocol/pb"

	"github.com/lloom/lloom/node/client"
	lp "github.com/lloom/lloom/protocol"
)

// deadline bounds how long a step waits for the network to show it.
const deadline = 15 * time.Second

// poll asks until ok or the deadline, printing what the network says.
func poll(ctx context.Context, what string, f func() (ok bool, says string, err error)) error {
	end := time.Now().Add(deadline)
	var says string
	for {
		ok, s, err := f()
		if err == nil {
			says = s
		}
		if ok {
			fmt.Println("   network says:", says)
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("waited %s for %s; the network says: %s (last error: %v)", deadline, what, says, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expect waits until a client query for model lists an executor for which
// ok holds (any executor, when ok is nil).
func expect(ctx context.Context, c *client.Client, model, what string, ok func(*client.Executor) bool) error {
	return poll(ctx, what, func() (bool, string, error) {
		res, err := c.FindModel(ctx, model, nil)
		if err != nil {
			return false, "", err
		}
		if len(res.Executors) == 0 {
			return false, "no executor serves " + model, nil
		}
		x := res.Executors[0]
		price := "none"
		if p := x.Model.GetPricing(); p != nil {
			price = p.GetInputTokenPriceWei() + "/" + p.GetOutputTokenPriceWei() + " wei"
		}
		says := fmt.Sprintf("%s: %s, %d active / %d queued of %d, price in/out %s, %.0f tokens/s, verified=%v",
			model, lp.StatusName(x.Status), x.Active, x.Queued, x.Capacity, price,
			x.Model.GetPerformance().GetTokensPerSecond(), x.Verified)
		return ok == nil || ok(x), says, nil
	})
}

func rejected(ctx context.Context, c *client.Client) (uint64, error) {
	st, err := c.Stats(ctx)
	if err != nil {
		return 0, err
	}
	return st.Validators[0].Stats.GetMessagesRejected(), nil
}

// publishForged joins the topic as a separate peer and publishes an
// announcement in the executor's name whose signature is broken, as an
// attacker would.
func publishForged(ctx context.Context, validators []node.BootstrapPeer, e *executor.Executor, key crypto.PrivKey) error {
	h, err := node.NewHost(node.HostConfig{Key: newKey()})
	if err != nil {
		return err
	}
	defer h.Close()
	// The attacker's own node does not check what it publishes.
	g, err := node.JoinRaw(h, lp.DefaultNetwork)
	if err != nil {
		return err
	}
	defer g.Close()
	v := validators[0]
	if v.ID == "" { // the host:port form: learn the id as the CLI does
		if v.ID, err = node.ProbePeerID(ctx, key, v.HostPort); err != nil {
			return err
		}
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: v.ID, Addrs: []ma.Multiaddr{v.Addr}}); err != nil {
		return err
	}
	if err := poll(ctx, "the validator in the attacker's topic view", func() (bool, string, error) {
		n := len(g.Topic.ListPeers())
		return n > 0, fmt.Sprintf("%d topic peer(s)", n), nil
	}); err != nil {
		return err
	}
	a := &pb.Announcement{
		ExecutorId: []byte(e.ID()), Seq: uint64(time.Now().UnixNano()), Kind: pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE,
		IssuedAtMs: time.Now().UnixMilli(), ProtocolVersion: lp.Version,
		Models: []*pb.ModelDescriptor{{ModelId: "free-gpu-for-everyone", Available: true, Capacity: 1000}},
	}
	env, err := lp.SealAnnouncement(a, key)
	if err != nil {
		return err
	}
	env[len(env)-1] ^= 0xff // the last byte of the signature
	data, err := node.EncodeAnnouncement(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	if sent, err := g.PublishAndWait(ctx, data); err != nil || !sent {
		return fmt.Errorf("forged announcement not sent: %v", err)
	}
	return nil
}
