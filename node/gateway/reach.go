package gateway

import (
	"net/http"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node/client"
)

// setReachHeaders says how a whole answer travelled: X-Lloom-Connection
// is "direct" or "relayed", X-Lloom-Punch the hole punch's outcome.
func setReachHeaders(h http.Header, ans *client.Answer) {
	if ans.Connection != "" {
		h.Set("X-Lloom-Connection", ans.Connection)
	}
	if ans.Punch != "" {
		h.Set("X-Lloom-Punch", ans.Punch)
	}
}

// connectionTo is how a streamed answer travels, known when its first
// chunk arrives: "direct" if a direct connection to the executor exists
// (the stream prefers it), else "relayed".
func (g *Gateway) connectionTo(p peer.ID) string {
	conns := g.client.Host().Network().ConnsToPeer(p)
	for _, c := range conns {
		if !c.Stat().Limited {
			return "direct"
		}
	}
	if len(conns) == 0 {
		return "unknown"
	}
	return "relayed"
}
