// Package feed gives the validator's change feed (/lloom/watch/1.0.0, its
// WatchEvent frames) and its statistics the JSON of DESIGN §3's conventions,
// for people's tools: the validator's HTTP API and dashboard, and
// `lloom client watch --json`, so that all of them speak one shape. Peer
// ids are base58 text, addresses multiaddr text; only values that can pass
// 2^53 are strings (versions, sequence numbers, wei).
package feed

import (
	"strconv"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Event is one WatchEvent.
type Event struct {
	Version       string    `json:"version"`
	Kind          string    `json:"kind"`
	AtMs          int64     `json:"at_ms"`
	Executor      *Executor `json:"executor,omitempty"`
	AddedModels   []string  `json:"added_models,omitempty"`
	DroppedModels []string  `json:"dropped_models,omitempty"`
	// Snapshot is set on a synced event that ends a snapshot.
	Snapshot bool   `json:"snapshot,omitempty"`
	Error    *Error `json:"error,omitempty"`
}

// Error is why the validator ended the feed.
type Error struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

// Executor is one executor as the validator sees it.
type Executor struct {
	PeerID string `json:"peer_id"`
	Status string `json:"status"`
	// Verified: the validator reached the executor and it proved its key
	// (DESIGN §10).
	Verified bool `json:"verified"`
	// Relayed: the executor announced only relayed addresses (behind a
	// NAT, reached through a relay), none direct.
	Relayed         bool     `json:"relayed"`
	LastSeenMs      int64    `json:"last_seen_ms"`
	RegisteredAtMs  int64    `json:"registered_at_ms"`
	AnnouncementSeq string   `json:"announcement_seq"`
	Addrs           []string `json:"addrs"`
	Models          []Model  `json:"models"`
}

// Model is one model of an executor, with its load and price.
type Model struct {
	ModelID             string   `json:"model_id"`
	Status              string   `json:"status"`
	Active              uint32   `json:"active"`
	Queued              uint32   `json:"queued"`
	Capacity            uint32   `json:"capacity"`
	Available           bool     `json:"available"`
	BackendType         string   `json:"backend_type"`
	MaxContextLength    uint32   `json:"max_context_length"`
	Features            []string `json:"features"`
	InputTokenPriceWei  string   `json:"input_token_price_wei"`
	OutputTokenPriceWei string   `json:"output_token_price_wei"`
}

// EventOf is the JSON of ev.
func EventOf(ev *pb.WatchEvent) Event {
	out := Event{
		Version:       strconv.FormatUint(ev.GetVersion(), 10),
		Kind:          lp.WatchKindName(ev.GetKind()),
		AtMs:          ev.GetAtMs(),
		AddedModels:   ev.GetAddedModels(),
		DroppedModels: ev.GetDroppedModels(),
		Snapshot:      ev.GetSnapshot(),
	}
	if x := ev.GetExecutor(); x != nil {
		e := ExecutorOf(x)
		out.Executor = &e
	}
	if ev.GetKind() == pb.WatchEventKind_WATCH_EVENT_KIND_ERROR {
		out.Error = &Error{Code: int32(ev.GetErrorCode()), Message: ev.GetErrorMessage()}
	}
	return out
}

// ExecutorOf is the JSON of x.
func ExecutorOf(x *pb.WatchedExecutor) Executor {
	out := Executor{
		PeerID:          PeerText(x.GetPeerId()),
		Status:          lp.StatusName(x.GetStatus()),
		Verified:        x.GetVerified(),
		LastSeenMs:      x.GetLastSeenMs(),
		RegisteredAtMs:  x.GetRegisteredAtMs(),
		AnnouncementSeq: strconv.FormatUint(x.GetAnnouncementSeq(), 10),
		Addrs:           make([]string, 0, len(x.GetAddrs())),
		Models:          make([]Model, 0, len(x.GetModels())),
	}
	direct, relayed := 0, 0
	for _, b := range x.GetAddrs() {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			continue
		}
		out.Addrs = append(out.Addrs, a.String())
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			relayed++
		} else {
			direct++
		}
	}
	out.Relayed = relayed > 0 && direct == 0
	for _, m := range x.GetModels() {
		features := m.GetFeatures()
		if features == nil {
			features = []string{}
		}
		out.Models = append(out.Models, Model{
			ModelID:             m.GetModelId(),
			Status:              lp.StatusName(m.GetStatus()),
			Active:              m.GetActive(),
			Queued:              m.GetQueued(),
			Capacity:            m.GetCapacity(),
			Available:           m.GetAvailable(),
			BackendType:         m.GetBackendType(),
			MaxContextLength:    m.GetMaxContextLength(),
			Features:            features,
			InputTokenPriceWei:  orZero(m.GetInputTokenPriceWei()),
			OutputTokenPriceWei: orZero(m.GetOutputTokenPriceWei()),
		})
	}
	return out
}

// PeerText is a binary peer id's base58 text; bytes that are no peer id
// come out as they are, quoted by JSON.
func PeerText(b []byte) string {
	id, err := peer.IDFromBytes(b)
	if err != nil {
		return string(b)
	}
	return id.String()
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// Stats is the JSON of a validator's statistics, with the names of
// `lloom client stats --json`.
func Stats(s *pb.Statistics) map[string]any {
	return map[string]any{
		"executors":              s.GetExecutors(),
		"healthy":                s.GetHealthy(),
		"overloaded":             s.GetOverloaded(),
		"stale":                  s.GetStale(),
		"models":                 s.GetModels(),
		"announcements_accepted": s.GetAnnouncementsAccepted(),
		"heartbeats_accepted":    s.GetHeartbeatsAccepted(),
		"messages_rejected":      s.GetMessagesRejected(),
		"messages_ignored":       s.GetMessagesIgnored(),
		"messages_dropped":       s.GetMessagesDropped(),
		"uptime_seconds":         s.GetUptimeSeconds(),
		"executors_removed":      s.GetExecutorsRemoved(),
		"announcements_pulled":   s.GetAnnouncementsPulled(),
		"queries_served":         s.GetQueriesServed(),
		"max_executors":          s.GetMaxExecutors(),
		"unverified":             s.GetUnverified(),
		"executors_evicted":      s.GetExecutorsEvicted(),
		// The validator's circuit relay (DESIGN §11).
		"relay_reservations":       s.GetRelayReservations(),
		"relay_circuits":           s.GetRelayCircuits(),
		"relay_reservations_total": s.GetRelayReservationsTotal(),
		"relay_circuits_total":     s.GetRelayCircuitsTotal(),
		"relay_refused":            s.GetRelayRefused(),
		"relay_bytes":              s.GetRelayBytes(),
	}
}
