package validator

import (
	"context"
	"errors"
	"net/netip"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// This file is the validator's acceptance of a message: the rules of
// DESIGN §4 and §10, in the order they run, whichever way the message came.
//
//	rule                                                    verdict (code)
//	1. size, decoding, field limits, signer = executor_id   reject (3002, 3001, 2005, 1001)
//	2. seq newer than the one held and than a tombstone     ignore (1004)
//	3. issued_at_ms at most 2 min ahead, RemoveAfter old    ignore (1003)
//	4. envelope signature                                   reject (1001)
//	5. registry: seq again under its lock, byte budget,     ignore (1004, 2005, 2001)
//	   room for a newcomer
//	6. liveness (§10): a newcomer or new addresses are
//	   checked over the pull protocol; an executor's own
//	   answer to that check makes it verified
//	7. a heartbeat naming an announcement not held, or of
//	   an unknown executor, makes the validator pull it
//
// Cheap rules come before the signature, and nothing in the registry
// changes before the signature holds (rule 4 returns the only value the
// registry takes: a protocol.Verified*). Rule 1 is package protocol's
// Decode*; rules 2 and 5 are the registry's own (registry.Check*Seq, then
// Apply* under its write lock, since another message may land between).
//
// Where a message came from changes two rules only:
//
//	origin         rule 2                         rule 3 age bound       rule 5/6
//	gossip         as above                       RemoveAfter            ApplyAnnouncement: admitted unverified
//	pull           the held seq is fine: the      none: the executor's   Reached: verified (or crowded)
//	               executor answers what it has   own word, live
//	relay          as above                       none if the heartbeat  ApplyAnnouncement: admitted unverified
//	                                              that asked names it

// source is how a message reached the validator.
type source int

const (
	fromGossip source = iota // GossipSub, relayed by any peer
	fromPull                 // the executor's own answer on a stream the validator opened to it
	fromRelay                // another validator's executor-info answer
)

var sourceNames = [...]string{fromGossip: "gossip", fromPull: "pull", fromRelay: "relay"}

// origin is where one message came from.
type origin struct {
	src source
	// from is the peer that delivered it: the GossipSub forwarder, the
	// executor itself, or the validator asked.
	from peer.ID
	// vouched is, for a relay's answer, the announcement_seq of the
	// verified heartbeat that asked for it.
	vouched uint64
	// observed is, for a pull, the remote IP of the stream's connection.
	observed netip.Addr
}

// judge is the topic validator: the rules over one gossip message, and
// GossipSub's verdict.
func (v *Validator) judge(_ context.Context, from peer.ID, data []byte) pubsub.ValidationResult {
	p, err := node.DecodeGossip(data) // rule 1
	if err == nil {
		if p.Announcement != nil {
			err = v.acceptAnnouncement(p.Announcement, origin{src: fromGossip, from: from})
		} else {
			err = v.acceptHeartbeat(p.Heartbeat, from)
		}
	}
	verdict := verdictOf(err)
	if err != nil {
		v.countRefusal(from, p, err, verdict)
	}
	return verdict
}

// acceptAnnouncement runs rules 2 to 6 over a decoded announcement.
func (v *Validator) acceptAnnouncement(d *lp.DecodedAnnouncement, o origin) error {
	now := v.cfg.Now()
	a := d.Announcement
	// Rule 2. An executor's own answer may be the announcement held.
	if o.src != fromPull {
		if err := v.reg.CheckAnnouncementSeq(d.Signer, a.GetSeq(), now); err != nil {
			return err
		}
	}
	// Rule 3.
	maxAge := v.cfg.Registry.RemoveAfter.Milliseconds()
	if o.src == fromPull || (o.src == fromRelay && a.GetSeq() == o.vouched) {
		// An executor keeps its announcement until its models change, so
		// its current one may be old: the executor's own answer, or a
		// fresh heartbeat naming it, vouches that it is still its word.
		maxAge = 0
	}
	if err := lp.CheckFreshness(a.GetIssuedAtMs(), now.UnixMilli(), maxAge); err != nil {
		return err
	}
	// Rule 4.
	s, err := d.Verify()
	if err != nil {
		return err
	}
	// Rules 5 and 6.
	if o.src == fromPull {
		res, err := v.reg.Reached(s, o.observed, now)
		if err != nil {
			return err
		}
		if res.Applied {
			v.msgs.accepted(kindAnnouncement)
			v.logAnnouncement(s, o, res.Announcement)
		}
		v.logReached(s, o, res)
		return nil
	}
	res, err := v.reg.ApplyAnnouncement(s, now)
	switch {
	case errors.Is(err, lp.ErrRegistryFull):
		// A newcomer to a full registry waits for its check, which lets
		// it evict a worse entry once it proved itself live.
		v.pulls.check(s.Signer(), a.GetAddrs(), o.from)
		return err
	case err != nil:
		return err
	}
	v.msgs.accepted(kindAnnouncement)
	v.logAnnouncement(s, o, res)
	if res.Check {
		v.pulls.check(s.Signer(), a.GetAddrs(), o.from)
	}
	return nil
}

// acceptHeartbeat runs rules 2 to 5 and 7 over a decoded heartbeat.
func (v *Validator) acceptHeartbeat(d *lp.DecodedHeartbeat, from peer.ID) error {
	now := v.cfg.Now()
	h := d.Heartbeat
	if err := v.reg.CheckHeartbeatSeq(d.Signer, h.GetSeq()); err != nil { // rule 2
		return err
	}
	if err := lp.CheckFreshness(h.GetIssuedAtMs(), now.UnixMilli(), v.cfg.Registry.RemoveAfter.Milliseconds()); err != nil { // rule 3
		return err
	}
	s, err := d.Verify() // rule 4
	if err != nil {
		return err
	}
	res, err := v.reg.ApplyHeartbeat(s, now) // rule 5
	if err != nil {
		return err
	}
	v.msgs.accepted(kindHeartbeat)
	v.meters.heartbeatLag(now, h.GetIssuedAtMs())
	if res.Recovered {
		v.log.Info().Stringer("executor", s.Signer()).Msg("Executor is healthy again")
	}
	if res.NeedPull { // rule 7
		v.pulls.pull(s.Signer(), h.GetAnnouncementSeq(), from)
	}
	// Stringer, not Str: the peer id's base58 text is only made when debug
	// logging is on, not for every heartbeat.
	v.log.Debug().Stringer("executor", s.Signer()).Uint64("seq", h.GetSeq()).
		Int("models", len(h.GetLoad().GetModels())).Bool("known", res.Known).Msg("Heartbeat accepted")
	return nil
}

// verdictOf maps a rule's error to GossipSub's verdict: what an honest
// peer may relay — a replay, a stale message, one this validator has no
// room or budget for — is ignored; anything malformed or badly signed is
// rejected, which lowers the sender's score.
func verdictOf(err error) pubsub.ValidationResult {
	switch {
	case err == nil:
		return pubsub.ValidationAccept
	case errors.Is(err, lp.ErrReplay), errors.Is(err, lp.ErrExpired), errors.Is(err, lp.ErrRegistryFull),
		errors.Is(err, registry.ErrOverBudget), errors.Is(err, lp.ErrInternal), errors.Is(err, lp.ErrTimeout):
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationReject
}

// rejectLogs caps info-level rejection logs so that a flood of bad messages
// cannot flood the log; the rest go to debug, and all are counted.
var rejectLogs = rate.NewLimiter(20, 40)

func (v *Validator) countRefusal(from peer.ID, p node.GossipPayload, err error, verdict pubsub.ValidationResult) {
	var executor peer.ID
	kind := kindUnknown
	switch {
	case p.Announcement != nil:
		executor, kind = p.Announcement.Signer, kindAnnouncement
	case p.Heartbeat != nil:
		executor, kind = p.Heartbeat.Signer, kindHeartbeat
	}
	if verdict == pubsub.ValidationIgnore {
		v.msgs.refused(kind, verdictIgnored, lp.CodeOf(err))
	} else {
		v.msgs.refused(kind, verdictRejected, lp.CodeOf(err))
	}
	if errors.Is(err, lp.ErrReplay) || errors.Is(err, lp.ErrRegistryFull) {
		// Duplicates and replays are routine on a gossip network, and a
		// full registry refuses every newcomer until one is verified.
		v.log.Debug().Err(err).Stringer("from", from).Stringer("executor", executor).Msg("Message ignored")
		return
	}
	name := "reject"
	if verdict == pubsub.ValidationIgnore {
		name = "ignore"
	}
	lvl := v.log.Debug()
	if rejectLogs.Allow() {
		lvl = v.log.Info()
	}
	lvl.Stringer("from", from).Stringer("executor", executor).Int32("code", int32(lp.CodeOf(err))).
		Str("verdict", name).Str("reason", err.Error()).Msg("Rejected message")
}

func (v *Validator) logAnnouncement(s *lp.VerifiedAnnouncement, o origin, res registry.AnnounceResult) {
	ev := v.log.Info()
	if !ev.Enabled() {
		return
	}
	a := s.Announcement()
	ev = ev.Stringer("executor", s.Signer()).Uint64("seq", a.GetSeq()).Str("via", sourceNames[o.src])
	if a.GetKind() == pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
		if res.Removed {
			ev.Msg("Executor withdrew its announcement (REMOVAL)")
		}
		return
	}
	ids := make([]string, 0, len(a.GetModels()))
	for _, m := range a.GetModels() {
		ids = append(ids, m.GetModelId())
	}
	ev.Str("kind", lp.KindName(a.GetKind())).Strs("models", ids).Bool("new", res.New).
		Strs("added", res.Added).Strs("dropped", res.Dropped).Msg("Received model announcement")
}

func (v *Validator) logReached(s *lp.VerifiedAnnouncement, o origin, res registry.ReachResult) {
	switch {
	case res.Crowded:
		v.log.Info().Stringer("executor", s.Signer()).Str("observed", o.observed.String()).
			Int("max_per_ip", v.cfg.Registry.MaxPerIP).
			Msg("Executor reached but its address has the most verified executors allowed; it stays unverified")
	case res.Promoted:
		ev := v.log.Info().Stringer("executor", s.Signer()).Str("observed", o.observed.String())
		if res.Evicted != "" {
			ev = ev.Stringer("evicted", res.Evicted)
		}
		ev.Msg("Executor verified: it answered over its own connection")
	}
}
