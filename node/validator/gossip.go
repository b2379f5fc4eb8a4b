package validator

import (
	"context"
	"errors"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
)

// validate is the topic validator. It runs concurrently on GossipSub's
// validation workers. Cheap checks come first (decoding and limits happened
// in node.DecodeGossip; then sequence and freshness), the signature next,
// and only a message whose signature holds reaches the registry.
func (v *Validator) validate(_ context.Context, from peer.ID, p node.GossipPayload) error {
	now := v.cfg.Now()
	maxAge := v.cfg.Registry.RemoveAfter
	if s := p.Announcement; s != nil {
		a := s.Announcement
		if held, ok := v.reg.AnnouncementSeq(s.Signer); ok && a.GetSeq() <= held {
			return lp.Errorf(lp.ErrReplay.Code, "announcement seq %d is not newer than %d", a.GetSeq(), held)
		}
		if err := lp.CheckFreshness(a.GetIssuedAtMs(), now.UnixMilli(), maxAge.Milliseconds()); err != nil {
			return err
		}
		if err := s.Verify(); err != nil {
			return err
		}
		return v.applyAnnouncement(s, now, "gossip")
	}
	s := p.Heartbeat
	h := s.Heartbeat
	if held, ok := v.reg.HeartbeatSeq(s.Signer); ok && h.GetSeq() <= held {
		return lp.Errorf(lp.ErrReplay.Code, "heartbeat seq %d is not newer than %d", h.GetSeq(), held)
	}
	if err := lp.CheckFreshness(h.GetIssuedAtMs(), now.UnixMilli(), maxAge.Milliseconds()); err != nil {
		return err
	}
	if err := s.Verify(); err != nil {
		return err
	}
	res, err := v.reg.ApplyHeartbeat(s, now)
	if err != nil {
		return err
	}
	v.heartbeats.Add(1)
	if res.Recovered {
		v.log.Info().Stringer("executor", s.Signer).Msg("Executor is healthy again")
	}
	if res.NeedPull {
		v.pulls.request(s.Signer, h.GetAnnouncementSeq(), from)
	}
	// Stringer, not Str: the peer id's base58 text is only made when debug
	// logging is on, not for every heartbeat.
	v.log.Debug().Stringer("executor", s.Signer).Uint64("seq", h.GetSeq()).
		Int("models", len(h.GetLoad().GetModels())).Bool("known", res.Known).Msg("Heartbeat accepted")
	return nil
}

func (v *Validator) applyAnnouncement(s *lp.SignedAnnouncement, now time.Time, via string) error {
	res, err := v.reg.ApplyAnnouncement(s, now)
	if err != nil {
		return err
	}
	v.announcements.Add(1)
	ev := v.log.Info()
	if !ev.Enabled() {
		return nil
	}
	a := s.Announcement
	ev = ev.Stringer("executor", s.Signer).Uint64("seq", a.GetSeq()).Str("via", via)
	if res.Removed {
		ev.Msg("Executor withdrew its announcement (REMOVAL)")
		return nil
	}
	ids := make([]string, 0, len(a.GetModels()))
	for _, m := range a.GetModels() {
		ids = append(ids, m.GetModelId())
	}
	ev.Str("kind", lp.KindName(a.GetKind())).Strs("models", ids).Bool("new", res.New).
		Strs("added", res.Added).Strs("dropped", res.Dropped).Msg("Received model announcement")
	return nil
}

// rejectLogs caps info-level rejection logs so that a flood of bad messages
// cannot flood the log; the rest go to debug, and all are counted.
var rejectLogs = rate.NewLimiter(20, 40)

func (v *Validator) onReject(from peer.ID, p node.GossipPayload, err error) {
	var executor peer.ID
	switch {
	case p.Announcement != nil:
		executor = p.Announcement.Signer
	case p.Heartbeat != nil:
		executor = p.Heartbeat.Signer
	}
	if errors.Is(err, lp.ErrReplay) {
		// Duplicates and replays are routine on a gossip network.
		v.ignored.Add(1)
		v.log.Debug().Err(err).Stringer("from", from).Stringer("executor", executor).Msg("Message ignored")
		return
	}
	verdict := "reject"
	if node.ValidationResult(err) == pubsub.ValidationIgnore {
		verdict = "ignore"
		v.ignored.Add(1)
	} else {
		v.rejected.Add(1)
	}
	lvl := v.log.Debug()
	if rejectLogs.Allow() {
		lvl = v.log.Info()
	}
	lvl.Stringer("from", from).Stringer("executor", executor).Int32("code", int32(lp.CodeOf(err))).
		Str("verdict", verdict).Str("reason", err.Error()).Msg("Rejected message")
}
