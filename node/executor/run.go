package executor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// recheck is how often the loop looks for new validators even without an
// event, in case an event came before the peer's protocols were known.
const recheck = time.Second

// Run connects to the validators and announces until ctx ends or Close is
// called; then it publishes a REMOVAL (if it announced anything) and
// returns. It may be called once.
func (e *Executor) Run(ctx context.Context) error {
	e.runOnce.Do(func() { e.started = true })
	if !e.started {
		return errors.New("executor: Run called twice or after Close")
	}
	defer close(e.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	defer wg.Wait() // runs after the cancel below
	defer cancel()
	wg.Go(func() {
		select {
		case <-e.stop:
			cancel()
		case <-ctx.Done():
		}
	})
	wg.Go(func() { e.conn.Run(ctx) })

	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	th, err := e.gossip.Topic.EventHandler()
	if err != nil {
		return err
	}
	defer th.Cancel()
	wg.Go(func() {
		for {
			if _, err := th.NextPeerEvent(ctx); err != nil {
				return
			}
			poke()
		}
	})
	sub, err := e.h.EventBus().Subscribe([]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerProtocolsUpdated)})
	if err != nil {
		return err
	}
	defer sub.Close()
	wg.Go(func() {
		for {
			select {
			case <-sub.Out():
				poke()
			case <-ctx.Done():
				return
			}
		}
	})

	log := e.cfg.Logger
	if e.cfg.announceOnly() {
		log.Info().Msg("No backend configured (--backend-url): running announce-only; requests are answered with 6003")
	} else {
		// Know which backends answer before the first announcement.
		e.catalog.probe(ctx, probeTimeout, e.cfg.Discover)
		wg.Go(func() { e.watchBackends(ctx) })
	}
	log.Info().Strs("addrs", e.Addrs()).Int("models", len(e.state.Models())).
		Bool("announce", e.cfg.AnnounceModels).Msg("Executor started")

	announced := map[peer.ID]bool{} // validators that have our current announcement
	pending := e.cfg.AnnounceModels // an announcement is owed once a validator listens
	waiting := false                // logged "waiting for a validator"
	var waitingSince time.Time
	hinted := false // logged why the connected validators do not count
	hb := time.NewTimer(rand.N(e.cfg.HeartbeatInterval) + e.cfg.HeartbeatInterval/10)
	defer hb.Stop()
	// Early heartbeats for load crossing overloaded: at most one a second.
	var lastEarly time.Time
	early := time.NewTimer(time.Hour)
	early.Stop()
	defer early.Stop()
	earlyHeartbeat := func() {
		lastEarly = time.Now()
		if err := e.heartbeat(ctx); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("Heartbeat not published")
		}
	}
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			e.withdraw()
			return nil
		case <-kick:
		case <-tick.C:
		case <-e.state.Changed():
			pending = e.cfg.AnnounceModels
		case <-e.addrsChanged: // a relay slot or a new public address (reach.go)
			pending = e.cfg.AnnounceModels && e.announced() > 0
		case <-hb.C:
			hb.Reset(jitter(e.cfg.HeartbeatInterval))
			if err := e.heartbeat(ctx); err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("Heartbeat not published")
			}
		case <-e.loadKick:
			if wait := time.Second - time.Since(lastEarly); wait > 0 {
				early.Reset(wait)
			} else {
				earlyHeartbeat()
			}
		case <-early.C:
			earlyHeartbeat()
		}
		if !e.cfg.AnnounceModels {
			continue
		}
		vals := e.validators()
		fresh := false
		for p := range announced {
			if !vals[p] {
				delete(announced, p) // gone: it gets a fresh announcement when back
			}
		}
		for p := range vals {
			fresh = fresh || !announced[p]
		}
		if len(vals) == 0 {
			if pending && !waiting {
				log.Info().Msg("Waiting for a validator to join the topic before announcing")
				waiting, waitingSince = true, time.Now()
			}
			if waiting && !hinted && time.Since(waitingSince) > offTopicHint {
				if others := e.offTopicValidators(); len(others) > 0 {
					e.explainOffTopic(ctx, others) // hint.go
					hinted = true
				}
			}
			continue
		}
		waiting, hinted = false, false
		if !pending && !fresh {
			continue
		}
		if err := e.publishAnnouncement(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("Announcement not published; will retry")
			}
			continue
		}
		pending = false
		for p := range vals {
			announced[p] = true
		}
	}
}

// offTopicHint is how long the executor waits for a validator before it
// says why the validators it is connected to do not count.
const offTopicHint = 5 * time.Second

// offTopicValidators are connected peers that answer queries (validators)
// but have not joined our topic: another network, or not subscribed.
func (e *Executor) offTopicValidators() []peer.ID {
	var out []peer.ID
	for _, p := range e.h.Network().Peers() {
		if ok, _ := e.h.Peerstore().SupportsProtocols(p, lp.QueryProtocol); len(ok) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// validators are the topic's peers that answer queries: lloom validators.
func (e *Executor) validators() map[peer.ID]bool {
	out := map[peer.ID]bool{}
	for _, p := range e.gossip.Topic.ListPeers() {
		if e.h.Network().Connectedness(p) != network.Connected {
			continue
		}
		if ok, _ := e.h.Peerstore().SupportsProtocols(p, lp.QueryProtocol); len(ok) > 0 {
			out[p] = true
		}
	}
	return out
}

func (e *Executor) publishAnnouncement(ctx context.Context) error {
	e.mu.Lock()
	kind := pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE
	if e.announce == 0 {
		kind = pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL
	}
	e.mu.Unlock()
	data, a, err := e.seal(kind)
	if err != nil {
		return err
	}
	if err := e.gossip.Topic.Publish(ctx, data); err != nil {
		return err
	}
	models := make([]string, 0, len(a.GetModels()))
	for _, m := range a.GetModels() {
		models = append(models, m.GetModelId())
	}
	e.cfg.Logger.Info().Str("kind", lp.KindName(kind)).Uint64("seq", a.GetSeq()).Strs("models", models).Msg("Published model announcement")
	return nil
}

// seal builds and signs the next announcement and makes it the current one
// (what pulls return) before it is published.
func (e *Executor) seal(kind pb.AnnouncementKind) ([]byte, *pb.Announcement, error) {
	a, err := e.state.NextAnnouncement(kind, e.addrBytes(), e.cfg.Now())
	if err != nil {
		return nil, nil, err
	}
	a.EvmAddress = e.cfg.EVMAddress
	a.AgentVersion = e.cfg.AgentVersion
	// GossipSub's own refusal of it would say only "validation failed".
	if err := lp.CheckAnnouncement(a); err != nil {
		return nil, nil, fmt.Errorf("announcement fails the checks every validator applies: %w", err)
	}
	env, err := lp.SealAnnouncement(a, e.cfg.Key)
	if err != nil {
		return nil, nil, err
	}
	data, err := node.EncodeAnnouncement(env)
	if err != nil {
		return nil, nil, err
	}
	if len(data) > lp.MaxGossipMessageSize {
		// Every peer would reject it and lower our score.
		return nil, nil, fmt.Errorf("announcement of %d bytes exceeds %d; too many addresses or models", len(data), lp.MaxGossipMessageSize)
	}
	e.mu.Lock()
	e.current, e.curSeq = env, a.GetSeq()
	e.announce++
	e.mu.Unlock()
	return data, a, nil
}

func (e *Executor) heartbeat(ctx context.Context) error {
	seq := e.AnnouncementSeq()
	if seq == 0 || !e.cfg.AnnounceModels {
		return nil // nothing announced yet: a heartbeat would name nothing
	}
	h, err := e.state.NextHeartbeat(seq, e.cfg.Now())
	if err != nil {
		return err
	}
	env, err := lp.SealHeartbeat(h, e.cfg.Key)
	if err != nil {
		return err
	}
	data, err := node.EncodeHeartbeat(env)
	if err != nil {
		return err
	}
	if err := e.gossip.Topic.Publish(ctx, data); err != nil {
		return err
	}
	e.cfg.Logger.Debug().Uint64("seq", h.GetSeq()).Uint64("announcement_seq", seq).Msg("Published heartbeat")
	return nil
}

// withdraw publishes a REMOVAL and waits until it has left for a peer.
func (e *Executor) withdraw() {
	if !e.cfg.AnnounceModels || e.AnnouncementSeq() == 0 {
		return
	}
	if len(e.gossip.Topic.ListPeers()) == 0 {
		e.cfg.Logger.Warn().Msg("No peer to send the REMOVAL to; validators will mark this executor stale")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RemovalTimeout)
	defer cancel()
	data, a, err := e.seal(pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL)
	if err != nil {
		e.cfg.Logger.Error().Err(err).Msg("REMOVAL not sealed")
		return
	}
	sent, err := e.gossip.PublishAndWait(ctx, data)
	switch {
	case err != nil:
		e.cfg.Logger.Warn().Err(err).Msg("REMOVAL not published; validators will mark this executor stale")
	case !sent:
		e.cfg.Logger.Warn().Msg("REMOVAL not delivered to any peer in time; validators will mark this executor stale")
	default:
		// Written to a peer is not yet read by it: closing the host now
		// could drop it in flight. Wait until a validator no longer lists
		// us, which also tells the operator it took effect.
		confirmed := e.confirmRemoved(ctx)
		e.cfg.Logger.Info().Uint64("seq", a.GetSeq()).Bool("confirmed", confirmed).Msg("Published REMOVAL")
	}
}

// confirmRemoved asks a connected validator until it no longer lists this
// executor, or ctx ends.
func (e *Executor) confirmRemoved(ctx context.Context) bool {
	req, err := proto.Marshal(&pb.QueryRequest{QueryId: 1, Network: e.cfg.Network,
		Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: [][]byte{[]byte(e.h.ID())}}}})
	if err != nil {
		return false
	}
	for {
		for v := range e.validators() {
			b, err := node.Call(ctx, e.h, v, lp.QueryProtocol, req, lp.MaxResponseSize, time.Second)
			var resp pb.QueryResponse
			if err == nil && proto.Unmarshal(b, &resp) == nil && resp.GetErrorCode() == pb.ErrorCode_ERROR_CODE_EXECUTOR_NOT_FOUND {
				return true
			}
			break // one validator is enough; gossip tells the others
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *Executor) addrBytes() [][]byte {
	var out [][]byte
	for _, a := range e.h.Addrs() {
		out = append(out, a.Bytes())
	}
	return out
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// probeTimeout bounds one backend model listing.
const probeTimeout = 3 * time.Second

// watchBackends asks failed backends again every probe interval, and lists
// models every list interval (discovery, and models a backend said it did
// not know).
func (e *Executor) watchBackends(ctx context.Context) {
	probe := time.NewTicker(e.cfg.Backend.ProbeInterval)
	defer probe.Stop()
	list := time.NewTicker(e.cfg.Backend.ListInterval)
	defer list.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-probe.C:
			if e.catalog.backendsDown() {
				e.catalog.probe(ctx, probeTimeout, e.cfg.Discover)
			}
		case <-list.C:
			if e.cfg.Discover || e.catalog.missingAny() {
				e.catalog.probe(ctx, probeTimeout, e.cfg.Discover)
			}
		}
	}
}
