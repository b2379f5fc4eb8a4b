package executor

import (
	"hash"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// receipt seals the receipt of a complete answer, priced as the model was
// announced when the request was accepted.
func (e *Executor) receipt(req *pb.InferenceRequest, desc *pb.ModelDescriptor, usage *pb.Usage, finish string, digest hash.Hash, started time.Time, s network.Stream) ([]byte, error) {
	p := desc.GetPricing()
	in, out, minFee := lp.CanonicalWei(p.GetInputTokenPriceWei()), lp.CanonicalWei(p.GetOutputTokenPriceWei()), lp.CanonicalWei(p.GetMinimumFeeWei())
	r := &pb.Receipt{
		RequestId:           req.GetRequestId(),
		ExecutorId:          []byte(e.h.ID()),
		ClientId:            []byte(s.Conn().RemotePeer()),
		ModelId:             req.GetModelId(),
		PromptTokens:        usage.GetPromptTokens(),
		CompletionTokens:    usage.GetCompletionTokens(),
		InputTokenPriceWei:  in,
		OutputTokenPriceWei: out,
		MinimumFeeWei:       minFee,
		FeeWei:              lp.Fee(usage.GetPromptTokens(), usage.GetCompletionTokens(), in, out, minFee),
		StartedAtMs:         started.UnixMilli(),
		FinishedAtMs:        time.Now().UnixMilli(),
		OutputSha256:        digest.Sum(nil),
		FinishReason:        finish,
	}
	return lp.SealReceipt(r, e.cfg.Key)
}
