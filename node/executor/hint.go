package executor

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// hintTimeout bounds asking the off-topic validators why they are.
const hintTimeout = 2 * time.Second

// explainOffTopic says, for each connected validator that has not joined
// this network's topic, why: asked with this executor's network, a
// validator of another network names its own (3004); one that answers is
// on this network but does not subscribe to announcements.
func (e *Executor) explainOffTopic(ctx context.Context, validators []peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, hintTimeout)
	defer cancel()
	topic := lp.Topic(e.cfg.Network)
	for _, v := range validators {
		log := e.cfg.Logger.Warn().Str("validator", v.String()).Str("topic", topic).Str("network", e.cfg.Network)
		req, err := proto.Marshal(&pb.QueryRequest{QueryId: 1, Network: e.cfg.Network,
			Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}})
		if err != nil {
			return
		}
		b, err := node.Call(ctx, e.h, v, lp.QueryProtocol, req, lp.MaxResponseSize, hintTimeout)
		var resp pb.QueryResponse
		if err == nil {
			err = proto.Unmarshal(b, &resp)
		}
		if err == nil {
			err = lp.ErrorFromResponse(resp.GetErrorCode(), resp.GetErrorMessage())
		}
		switch {
		case errors.Is(err, lp.ErrWrongNetwork):
			log.Str("reason", resp.GetErrorMessage()).
				Msg("Connected to a validator of another network: nothing is announced to it; give both the same --network (LLOOM_NETWORK)")
		case err == nil:
			log.Msg("Connected to a validator of this network that does not subscribe to announcements (--subscribe-announcements=false): it cannot register this executor")
		default:
			log.Err(err).Msg("Connected to a validator that is not on this network's topic: is --network the same on both sides, and does the validator subscribe to announcements?")
		}
	}
}
