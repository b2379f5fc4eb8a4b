package node

import (
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	lp "github.com/lloom/lloom/protocol"
)

// Score thresholds. Invalid messages cost 100 times their count squared:
// three (-900) stop gossip with the sender, four (-1600) stop its
// publishes reaching us, six (-3600; five make exactly -2500, and only a
// score below the threshold counts) graylist it. The penalty decays over
// about an hour.
var scoreThresholds = pubsub.PeerScoreThresholds{
	GossipThreshold:             -500,
	PublishThreshold:            -1000,
	GraylistThreshold:           -2500,
	AcceptPXThreshold:           10,
	OpportunisticGraftThreshold: 5,
}

// PeerScoreOption configures GossipSub peer scoring for lloom's topic.
//
// lloom's traffic is low-rate: an honest executor publishes a heartbeat every
// few seconds and nothing else, and a validator publishes nothing. So there
// are no mesh-delivery or mesh-failure penalties, which would punish honest
// quiet peers; the score is driven by invalid messages (rejected by the
// topic validator), with a small reward for first deliveries and time in
// the mesh. Many executors may run behind one address, so IP colocation
// only counts past 50 peers per address, and not at all on loopback.
//
// appScore, if not nil, is the application's own score of a peer, added
// with weight 1: validators lower it for a peer that answered their relay
// pulls with envelopes that do not verify.
func PeerScoreOption(network string, appScore func(peer.ID) float64) pubsub.Option {
	if appScore == nil {
		appScore = func(peer.ID) float64 { return 0 }
	}
	_, loop4, _ := net.ParseCIDR("127.0.0.0/8")
	_, loop6, _ := net.ParseCIDR("::1/128")
	topic := &pubsub.TopicScoreParams{
		TopicWeight: 1,

		TimeInMeshWeight:  0.01,
		TimeInMeshQuantum: time.Second,
		TimeInMeshCap:     3600,

		FirstMessageDeliveriesWeight: 1,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:    50,

		MeshMessageDeliveriesWeight:     0,
		MeshMessageDeliveriesDecay:      pubsub.ScoreParameterDecay(time.Minute),
		MeshMessageDeliveriesCap:        1,
		MeshMessageDeliveriesThreshold:  1,
		MeshMessageDeliveriesWindow:     10 * time.Millisecond,
		MeshMessageDeliveriesActivation: time.Minute,
		MeshFailurePenaltyWeight:        0,
		MeshFailurePenaltyDecay:         pubsub.ScoreParameterDecay(time.Minute),

		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
	params := &pubsub.PeerScoreParams{
		Topics:                      map[string]*pubsub.TopicScoreParams{lp.Topic(network): topic},
		TopicScoreCap:               100,
		AppSpecificScore:            appScore,
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 50,
		IPColocationFactorWhitelist: []*net.IPNet{loop4, loop6},
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(time.Hour),
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 10 * time.Minute,
		// Delivery records only earn first-delivery credit, settled within
		// the mesh's propagation time; the default two minutes cost about
		// a hundred bytes per message on a busy validator.
		SeenMsgTTL: 30 * time.Second,
	}
	th := scoreThresholds
	return pubsub.WithPeerScore(params, &th)
}
