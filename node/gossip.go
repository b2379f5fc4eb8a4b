package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// GossipPayload is a decoded GossipMessage: exactly one of Announcement and
// Heartbeat is set. Nothing in it has been verified yet.
type GossipPayload struct {
	Announcement *lp.DecodedAnnouncement
	Heartbeat    *lp.DecodedHeartbeat
}

// DecodeGossip decodes a GossipMessage and the envelope it carries, with
// every check but the signature's.
func DecodeGossip(data []byte) (GossipPayload, error) {
	if len(data) > lp.MaxGossipMessageSize {
		return GossipPayload{}, lp.Errorf(lp.ErrMalformed.Code, "gossip message of %d bytes exceeds %d", len(data), lp.MaxGossipMessageSize)
	}
	var gm pb.GossipMessage
	if err := proto.Unmarshal(data, &gm); err != nil {
		return GossipPayload{}, lp.Errorf(lp.ErrMalformed.Code, "bad gossip message: %v", err)
	}
	switch p := gm.GetPayload().(type) {
	case *pb.GossipMessage_AnnouncementEnvelope:
		a, err := lp.DecodeAnnouncement(p.AnnouncementEnvelope)
		return GossipPayload{Announcement: a}, err
	case *pb.GossipMessage_HeartbeatEnvelope:
		h, err := lp.DecodeHeartbeat(p.HeartbeatEnvelope)
		return GossipPayload{Heartbeat: h}, err
	default:
		return GossipPayload{}, lp.Errorf(lp.ErrMalformed.Code, "gossip message holds no envelope")
	}
}

// EncodeAnnouncement wraps announcement envelope bytes in a GossipMessage.
func EncodeAnnouncement(env []byte) ([]byte, error) {
	return proto.Marshal(&pb.GossipMessage{Payload: &pb.GossipMessage_AnnouncementEnvelope{AnnouncementEnvelope: env}})
}

// EncodeHeartbeat wraps heartbeat envelope bytes in a GossipMessage.
func EncodeHeartbeat(env []byte) ([]byte, error) {
	return proto.Marshal(&pb.GossipMessage{Payload: &pb.GossipMessage_HeartbeatEnvelope{HeartbeatEnvelope: env}})
}

// CheckPayload is the stateless part of the topic validator that every node
// runs: freshness against now, then the signature. (Validators run their
// whole rule list instead: node/validator/accept.go.)
func CheckPayload(p GossipPayload, now time.Time, maxAge time.Duration) error {
	nowMs := now.UnixMilli()
	if a := p.Announcement; a != nil {
		if err := lp.CheckFreshness(a.Announcement.GetIssuedAtMs(), nowMs, maxAge.Milliseconds()); err != nil {
			return err
		}
		_, err := a.Verify()
		return err
	}
	if err := lp.CheckFreshness(p.Heartbeat.Heartbeat.GetIssuedAtMs(), nowMs, maxAge.Milliseconds()); err != nil {
		return err
	}
	_, err := p.Heartbeat.Verify()
	return err
}

// ValidateFunc judges one decoded message; nil accepts it.
type ValidateFunc func(ctx context.Context, from peer.ID, p GossipPayload) error

// ValidationResult maps a validation error to GossipSub's verdict: a
// message that is stale, a replay, or refused for local reasons (registry
// full) is ignored, since an honest peer may relay it; anything malformed
// or badly signed is rejected, which lowers the sender's score.
func ValidationResult(err error) pubsub.ValidationResult {
	switch {
	case err == nil:
		return pubsub.ValidationAccept
	case errors.Is(err, lp.ErrReplay), errors.Is(err, lp.ErrExpired), errors.Is(err, lp.ErrRegistryFull),
		errors.Is(err, lp.ErrInternal), errors.Is(err, lp.ErrTimeout):
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationReject
	}
}

// JudgeFunc is a topic validator that takes a message's data as it came
// and returns GossipSub's verdict itself.
type JudgeFunc func(ctx context.Context, from peer.ID, data []byte) pubsub.ValidationResult

// GossipConfig configures the lloom topic.
type GossipConfig struct {
	Network string
	// Validate judges each message after it decoded; it must be safe for
	// concurrent use. Nodes that keep no state use it.
	Validate ValidateFunc
	// OnReject is told about each message that failed decoding or Validate.
	OnReject func(from peer.ID, p GossipPayload, err error)
	// Judge, if set, replaces DecodeGossip, Validate and OnReject: the
	// whole decision, decoding included (validators: one rule list).
	Judge JudgeFunc
	// AppScore is GossipSub's application-specific peer score (added to
	// the topic score with weight 1); nil is 0 for every peer.
	AppScore func(peer.ID) float64
	// Subscribe receives the topic's messages (validators); executors only
	// publish.
	Subscribe bool
	// Options are added to the router's (tests, scoring).
	Options []pubsub.Option
}

// Gossip is the node's GossipSub router and the lloom topic.
type Gossip struct {
	PubSub *pubsub.PubSub
	Topic  *pubsub.Topic
	Sub    *pubsub.Subscription // nil unless subscribed
	Tracer *Tracer
	cancel context.CancelFunc
}

// MessageID is the contract's message id: the raw SHA-256 of the data.
func MessageID(m *pubsubpb.Message) string {
	sum := sha256.Sum256(m.GetData())
	return string(sum[:])
}

// rpcOverhead is room in an RPC for what surrounds a maximal message.
const rpcOverhead = 4 << 10

// GossipOptions are lloom's GossipSub settings: no pubsub-level signature
// or author (the envelope carries the only signature), content message ids,
// 64 KiB messages, and queues sized for bursts.
func GossipOptions() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(MessageID),
		// The option bounds a whole RPC (framing, control messages), not
		// one message's data, which DecodeGossip bounds to the contract's
		// 64 KiB.
		pubsub.WithMaxMessageSize(lp.MaxGossipMessageSize + rpcOverhead),
		pubsub.WithValidateQueueSize(4096),
		pubsub.WithPeerOutboundQueueSize(1024),
	}
}

// NewGossip starts GossipSub on h with lloom's settings (no pubsub-level
// signature, content message ids, 64 KiB messages, inline validation) and
// joins the network's topic. Close stops it.
func NewGossip(h host.Host, cfg GossipConfig, log zerolog.Logger) (*Gossip, error) {
	ctx, cancel := context.WithCancel(context.Background())
	tracer := NewTracer()
	opts := append(append(GossipOptions(), tracer.Option(), PeerScoreOption(cfg.Network, cfg.AppScore)), cfg.Options...)
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("node: start gossipsub: %w", err)
	}
	g := &Gossip{PubSub: ps, Tracer: tracer, cancel: cancel}
	name := lp.Topic(cfg.Network)
	validate := func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if cfg.Judge != nil {
			return cfg.Judge(ctx, from, m.GetData())
		}
		p, err := DecodeGossip(m.GetData())
		if err == nil {
			err = cfg.Validate(ctx, from, p)
		}
		if err != nil && cfg.OnReject != nil {
			cfg.OnReject(from, p, err)
		}
		return ValidationResult(err)
	}
	if err := ps.RegisterTopicValidator(name, validate, pubsub.WithValidatorInline(true)); err != nil {
		g.Close()
		return nil, fmt.Errorf("node: register validator: %w", err)
	}
	if g.Topic, err = ps.Join(name); err != nil {
		g.Close()
		return nil, fmt.Errorf("node: join %s: %w", name, err)
	}
	if cfg.Subscribe {
		// Messages are applied in the validator; a small buffer would
		// only count deliveries of applied messages as drops.
		if g.Sub, err = g.Topic.Subscribe(pubsub.WithBufferSize(4096)); err != nil {
			g.Close()
			return nil, fmt.Errorf("node: subscribe %s: %w", name, err)
		}
	}
	log.Debug().Str("topic", name).Bool("subscribed", cfg.Subscribe).Msg("Joined topic")
	return g, nil
}

// PublishAndWait publishes data on the topic and waits until it has been written
// to at least one peer, or ctx ends; it reports whether it was sent.
func (g *Gossip) PublishAndWait(ctx context.Context, data []byte) (bool, error) {
	ch, done := g.Tracer.Expect(data)
	defer done()
	if err := g.Topic.Publish(ctx, data); err != nil {
		return false, err
	}
	select {
	case <-ch:
		return true, nil
	case <-ctx.Done():
		return false, nil
	}
}

// Close leaves the topic and stops the router.
func (g *Gossip) Close() {
	if g.Sub != nil {
		g.Sub.Cancel()
	}
	if g.Topic != nil {
		g.Topic.Close()
	}
	g.cancel()
}

// JoinRaw starts GossipSub with lloom's settings on h and joins the
// network's topic with no topic validator of its own, so that what it
// publishes reaches peers unchecked. It is for tools and tests that play a
// misbehaving peer; nodes use NewGossip. Close stops it.
func JoinRaw(h host.Host, network string, extra ...pubsub.Option) (*Gossip, error) {
	ctx, cancel := context.WithCancel(context.Background())
	tracer := NewTracer()
	ps, err := pubsub.NewGossipSub(ctx, h, append(append(GossipOptions(), tracer.Option()), extra...)...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("node: start gossipsub: %w", err)
	}
	g := &Gossip{PubSub: ps, Tracer: tracer, cancel: cancel}
	if g.Topic, err = ps.Join(lp.Topic(network)); err != nil {
		g.Close()
		return nil, fmt.Errorf("node: join %s: %w", lp.Topic(network), err)
	}
	return g, nil
}
