package validator

import (
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/lloom/lloom/pkg/metrics"
	"github.com/lloom/lloom/protocol/pb"
)

// The validator counts what it does once, in the arrays of this file:
// the statistics query (Stats, fillCounters) and the metrics
// (lloom_validator_messages_total, lloom_pulls_total; metrics.go) both
// read them, so that the two cannot disagree, and counting costs one
// atomic add whether metrics are on or off.

// msgKind is what a judged message carried.
type msgKind int

const (
	kindAnnouncement msgKind = iota
	kindHeartbeat
	kindUnknown // it did not decode far enough to tell
	numKinds
)

var kindNames = [numKinds]string{"announcement", "heartbeat", "unknown"}

// msgVerdict is what the validator did with a message.
type msgVerdict int

const (
	verdictAccepted msgVerdict = iota
	verdictIgnored
	verdictRejected
	numVerdicts
)

var verdictNames = [numVerdicts]string{"accepted", "ignored", "rejected"}

// maxCodes bounds the code indexes counted: the contract's codes and
// "other" (metrics.CodeIndex), checked by TestCodesFit.
const maxCodes = 32

// numCodes is how many of them are used.
var numCodes = len(metrics.Codes) + 1

// messageCounts counts messages by kind, verdict and wire code (index of
// metrics.Codes; the last index counts codes the contract does not
// define). Accepted counts announcements applied whichever way they came
// (gossip, pull, relay), as the statistics' announcements_accepted does;
// ignored and rejected count the topic's messages (pulls have their own
// counts, pullCounts). The zero value is ready to use.
type messageCounts struct {
	n [numKinds][numVerdicts][maxCodes]atomic.Uint64
}

func (c *messageCounts) at(k msgKind, v msgVerdict, code int) *atomic.Uint64 { return &c.n[k][v][code] }

// accepted counts one message of kind k accepted; code 0 is index 0.
func (c *messageCounts) accepted(k msgKind) { c.at(k, verdictAccepted, 0).Add(1) }

// refused counts one message refused with err's code.
func (c *messageCounts) refused(k msgKind, v msgVerdict, code pb.ErrorCode) {
	c.at(k, v, metrics.CodeIndex(code)).Add(1)
}

// sum adds up the counts of verdict v, of kind k (numKinds: every kind).
func (c *messageCounts) sum(k msgKind, v msgVerdict) uint64 {
	var n uint64
	for kind := range numKinds {
		if k != numKinds && kind != k {
			continue
		}
		for code := range numCodes {
			n += c.at(kind, v, code).Load()
		}
	}
	return n
}

// pullKind is what a pull was for: a liveness check (§10), a pull of an
// announcement a heartbeat named (§4), or that pull asked of a relay.
type pullKind int

const (
	pullCheck    = pullKind(jobCheck)
	pullPull     = pullKind(jobPull)
	pullRelay    = max(pullCheck, pullPull) + 1
	numPullKinds = pullRelay + 1
)

var pullKindNames = [numPullKinds]string{"check", "pull", "relay"}

// pullResult is how a pull ended: its announcement applied (or already
// held), ignored or rejected by the rules, the executor or relay not
// answering with it, or the job dropped at a bound before it ran.
type pullResult int

const (
	pullOK pullResult = iota
	pullIgnored
	pullRejected
	pullFailed
	pullDropped
	numPullResults
)

var pullResultNames = [numPullResults]string{"ok", "ignored", "rejected", "failed", "dropped"}

// pullCounts counts pulls by kind and result. The statistics'
// announcements_pulled is the pulls and relay pulls that ended ok.
type pullCounts [numPullKinds][numPullResults]atomic.Uint64

func (c *pullCounts) add(k pullKind, r pullResult) { c[k][r].Add(1) }

// pulled is the statistics' announcements_pulled.
func (c *pullCounts) pulled() uint64 { return c[pullPull][pullOK].Load() + c[pullRelay][pullOK].Load() }

// verdictResult maps a rule's error after a pull to its result.
func verdictResult(err error) pullResult {
	switch {
	case err == nil:
		return pullOK
	case verdictOf(err) == pubsub.ValidationIgnore:
		return pullIgnored
	}
	return pullRejected
}

// queryRefusals counts queries answered with an error before the
// registry was asked (rate limit, malformed, wrong network), by code index.
type queryRefusals [maxCodes]atomic.Uint64

func (q *queryRefusals) add(code pb.ErrorCode) { q[metrics.CodeIndex(code)].Add(1) }
