package validator

import (
	"fmt"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// A relay that answers a pull with an envelope that does not verify is
// not asked again for badRelayFor, and loses badEnvelopeScore of GossipSub
// score per such envelope (at most maxBadScore), through the router's
// application-specific score: four bad envelopes take an otherwise neutral
// peer below the gossip threshold (-500), ten to the graylist (-2500).
// Honest relays never serve one: a validator keeps only envelopes it
// verified.
const (
	badRelayFor      = 10 * time.Minute
	badEnvelopeScore = -250
	maxBadScore      = -10000
	maxBadRelays     = 4096
)

// relayBook remembers relays that served bad envelopes.
type relayBook struct {
	mu  sync.Mutex
	bad map[peer.ID]*badRelay // guarded by mu
}

type badRelay struct {
	envelopes int
	until     time.Time
}

func (b *relayBook) penalize(p peer.ID, envelopes int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.bad[p]
	if r == nil {
		if len(b.bad) >= maxBadRelays {
			return // the score of relays already known still counts
		}
		r = &badRelay{}
		b.bad[p] = r
	}
	r.envelopes += envelopes
	r.until = now.Add(badRelayFor)
}

func (b *relayBook) isBad(p peer.ID, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.bad[p]
	return r != nil && now.Before(r.until)
}

// score is the application-specific GossipSub score of p.
func (b *relayBook) score(p peer.ID) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.bad[p]; r != nil {
		return max(float64(r.envelopes)*badEnvelopeScore, maxBadScore)
	}
	return 0
}

func (b *relayBook) forget(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for p, r := range b.bad {
		if now.After(r.until) {
			delete(b.bad, p)
		}
	}
}

// ask queries a relay for a batch of executors and runs the rules over
// each envelope it returns, as a relay's answer. Envelopes that do not
// verify cost the relay its standing (relayBook).
func (p *puller) ask(via peer.ID, jobs []pullJob) {
	v := p.v
	ids := make([][]byte, len(jobs))
	for i, j := range jobs {
		ids[i] = []byte(j.executor)
	}
	envs, err := p.query(via, ids)
	bad := 0
	for _, j := range jobs {
		p.finish(j.executor)
		env, ok := envs[j.executor]
		switch {
		case err != nil:
			p.v.pullStats.add(pullRelay, pullFailed)
			v.log.Debug().Err(err).Stringer("executor", j.executor).Stringer("relay", via).Msg("Announcement pull through a relay failed")
			continue
		case !ok:
			p.v.pullStats.add(pullRelay, pullFailed)
			continue
		}
		d, err := lp.DecodeAnnouncement(env)
		if err == nil && d.Signer != j.executor {
			err = lp.Errorf(lp.ErrInvalidSignature.Code, "relay answered for %s with an announcement signed by %s", j.executor, d.Signer)
		}
		if err == nil {
			err = v.acceptAnnouncement(d, origin{src: fromRelay, from: via, vouched: j.vouched})
		}
		p.v.pullStats.add(pullRelay, verdictResult(err))
		switch {
		case err == nil:
		case verdictOf(err) == pubsub.ValidationReject:
			bad++
			v.log.Debug().Err(err).Stringer("executor", j.executor).Stringer("relay", via).Msg("Relay served a bad envelope")
		default:
			v.log.Debug().Err(err).Stringer("executor", j.executor).Stringer("relay", via).Msg("Relayed announcement not applied")
		}
	}
	if bad > 0 {
		p.relays.penalize(via, bad, time.Now())
		v.log.Info().Stringer("relay", via).Int("bad_envelopes", bad).Dur("not_asked_for", badRelayFor).
			Msg("Relay served envelopes that do not verify: its score drops and it is not asked again for a while")
	}
}

func (p *puller) query(via peer.ID, ids [][]byte) (map[peer.ID][]byte, error) {
	req, err := proto.Marshal(&pb.QueryRequest{
		QueryId: 1,
		Network: p.v.cfg.Network,
		Query:   &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: ids}},
		Filters: &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true, IncludeUnverified: true},
	})
	if err != nil {
		return nil, err
	}
	b, err := node.Call(p.ctx, p.v.h, via, lp.QueryProtocol, req, lp.MaxResponseSize, p.v.cfg.PullTimeout)
	if err != nil {
		return nil, err
	}
	var resp pb.QueryResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("relay %s: %w", via, err)
	}
	if err := lp.ErrorFromResponse(resp.GetErrorCode(), resp.GetErrorMessage()); err != nil {
		return nil, err
	}
	out := make(map[peer.ID][]byte, len(resp.GetExecutors().GetExecutors()))
	for _, e := range resp.GetExecutors().GetExecutors() {
		out[peer.ID(e.GetPeerId())] = e.GetAnnouncementEnvelope()
	}
	return out, nil
}
