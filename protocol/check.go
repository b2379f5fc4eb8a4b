package protocol

import (
	"fmt"
	"math"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol/pb"
)

// CheckAnnouncement checks every field of a against the contract's limits.
// It does not look at time or sequence, which depend on the receiver.
func CheckAnnouncement(a *pb.Announcement) error {
	if err := checkVersion(a.GetProtocolVersion()); err != nil {
		return err
	}
	if err := checkPeerID("executor_id", a.GetExecutorId()); err != nil {
		return err
	}
	if a.GetSeq() == 0 {
		return malformed("announcement seq is 0")
	}
	if a.GetIssuedAtMs() <= 0 {
		return malformed("announcement issued_at_ms is not set")
	}
	switch a.GetKind() {
	case pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL, pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE:
	case pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL:
		if len(a.GetModels()) != 0 {
			return malformed("a REMOVAL announcement carries %d models, want none", len(a.GetModels()))
		}
	default:
		return malformed("unknown announcement kind %d", a.GetKind())
	}
	if n := len(a.GetModels()); n > MaxModels {
		return Errorf(ErrModelLimitExceeded.Code, "%d models exceed the limit of %d per executor", n, MaxModels)
	}
	seen := make(map[string]struct{}, len(a.GetModels()))
	for i, m := range a.GetModels() {
		if err := CheckModelDescriptor(m); err != nil {
			return fmt.Errorf("model %d: %w", i, err)
		}
		if _, dup := seen[m.GetModelId()]; dup {
			return malformed("model %q announced twice", m.GetModelId())
		}
		seen[m.GetModelId()] = struct{}{}
	}
	if n := len(a.GetAddrs()); n > MaxAddrs {
		return malformed("%d addrs exceed the limit of %d", n, MaxAddrs)
	}
	for _, b := range a.GetAddrs() {
		if len(b) > MaxAddrLen {
			return malformed("addr of %d bytes exceeds %d", len(b), MaxAddrLen)
		}
		if _, err := ma.NewMultiaddrBytes(b); err != nil {
			return malformed("addr does not parse: %v", err)
		}
	}
	if err := checkEVMAddress(a.GetEvmAddress()); err != nil {
		return err
	}
	return checkLen("agent_version", a.GetAgentVersion(), MaxShortStringLen)
}

// CheckModelDescriptor checks one model descriptor's fields.
func CheckModelDescriptor(m *pb.ModelDescriptor) error {
	if m == nil {
		return malformed("empty model descriptor")
	}
	if !validModelID(m.GetModelId()) {
		return malformed("model_id %q: want 1-%d bytes of [A-Za-z0-9._:/@-]", truncate(m.GetModelId()), MaxModelIDLen)
	}
	for _, s := range []struct {
		name string
		v    string
		max  int
	}{
		{"backend_type", m.GetBackendType(), MaxBackendTypeLen},
		{"architecture", m.GetArchitecture(), MaxShortStringLen},
		{"model_size", m.GetModelSize(), MaxTinyStringLen},
		{"quantization", m.GetQuantization(), MaxTinyStringLen},
	} {
		if err := checkLen(s.name, s.v, s.max); err != nil {
			return err
		}
	}
	if n := len(m.GetFeatures()); n > MaxFeatures {
		return malformed("%d features exceed the limit of %d", n, MaxFeatures)
	}
	for _, f := range m.GetFeatures() {
		if f == "" || len(f) > MaxFeatureLen {
			return malformed("feature %q: want 1-%d bytes", truncate(f), MaxFeatureLen)
		}
	}
	if n := len(m.GetMetadata()); n > MaxMetadata {
		return malformed("%d metadata entries exceed the limit of %d", n, MaxMetadata)
	}
	for k, v := range m.GetMetadata() {
		if k == "" || len(k) > MaxMetadataKeyLen {
			return malformed("metadata key %q: want 1-%d bytes", truncate(k), MaxMetadataKeyLen)
		}
		if len(v) > MaxMetadataValueLen {
			return malformed("metadata %q value of %d bytes exceeds %d", k, len(v), MaxMetadataValueLen)
		}
	}
	if p := m.GetPricing(); p != nil {
		for name, v := range map[string]string{
			"input_token_price_wei":  p.GetInputTokenPriceWei(),
			"output_token_price_wei": p.GetOutputTokenPriceWei(),
			"minimum_fee_wei":        p.GetMinimumFeeWei(),
		} {
			if err := CheckPrice(v); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if p := m.GetPerformance(); p != nil {
		if !finite(p.GetTokensPerSecond()) || p.GetTokensPerSecond() < 0 {
			return malformed("tokens_per_second %v is not a non-negative number", p.GetTokensPerSecond())
		}
		if !finite(p.GetSuccessRate()) || p.GetSuccessRate() < 0 || p.GetSuccessRate() > 1 {
			return malformed("success_rate %v is not within 0..1", p.GetSuccessRate())
		}
	}
	return nil
}

// CheckPrice checks a wei amount: empty (zero) or 1-78 decimal digits.
func CheckPrice(v string) error {
	if len(v) > MaxPriceLen {
		return malformed("price of %d digits exceeds %d", len(v), MaxPriceLen)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return malformed("price %q is not a decimal number of wei", truncate(v))
		}
	}
	return nil
}

// CheckHeartbeat checks every field of h against the contract's limits.
func CheckHeartbeat(h *pb.Heartbeat) error {
	if err := checkPeerID("executor_id", h.GetExecutorId()); err != nil {
		return err
	}
	if h.GetSeq() == 0 {
		return malformed("heartbeat seq is 0")
	}
	if h.GetIssuedAtMs() <= 0 {
		return malformed("heartbeat issued_at_ms is not set")
	}
	if n := len(h.GetLoad().GetModels()); n > MaxModels {
		return Errorf(ErrModelLimitExceeded.Code, "heartbeat load for %d models exceeds the limit of %d", n, MaxModels)
	}
	for _, l := range h.GetLoad().GetModels() {
		if !validModelID(l.GetModelId()) {
			return malformed("heartbeat load model_id %q is not valid", truncate(l.GetModelId()))
		}
	}
	return nil
}

// CheckFreshness checks a message's issued_at_ms against the receiver's
// clock: at most MaxFutureSkewMs ahead, at most maxAgeMs behind.
func CheckFreshness(issuedAtMs, nowMs, maxAgeMs int64) error {
	if issuedAtMs > nowMs+MaxFutureSkewMs {
		return Errorf(ErrExpired.Code, "issued %d ms in the future (limit %d)", issuedAtMs-nowMs, MaxFutureSkewMs)
	}
	if maxAgeMs > 0 && issuedAtMs < nowMs-maxAgeMs {
		return Errorf(ErrExpired.Code, "issued %d ms ago (limit %d)", nowMs-issuedAtMs, maxAgeMs)
	}
	return nil
}

// CheckQuery checks a query request and returns its effective limit.
func CheckQuery(q *pb.QueryRequest) (limit int, err error) {
	switch {
	case q.GetLimit() == 0:
		limit = DefaultQueryLimit
	case q.GetLimit() > MaxQueryLimit:
		return 0, malformed("limit %d exceeds %d", q.GetLimit(), MaxQueryLimit)
	default:
		limit = int(q.GetLimit())
	}
	switch x := q.GetQuery().(type) {
	case *pb.QueryRequest_ListModels, *pb.QueryRequest_Statistics:
	case *pb.QueryRequest_FindModel:
		if !validModelID(x.FindModel.GetModelId()) {
			return 0, malformed("model_id %q is not valid", truncate(x.FindModel.GetModelId()))
		}
	case *pb.QueryRequest_ExecutorInfo:
		ids := x.ExecutorInfo.GetPeerIds()
		if len(ids) == 0 || len(ids) > MaxQueryPeerIDs {
			return 0, malformed("executor info wants 1-%d peer ids, got %d", MaxQueryPeerIDs, len(ids))
		}
		for _, id := range ids {
			if err := checkPeerID("peer_id", id); err != nil {
				return 0, err
			}
		}
	default:
		return 0, Errorf(ErrUnsupportedQuery.Code, "no query this validator knows was given")
	}
	f := q.GetFilters()
	if err := checkLen("backend_type filter", f.GetBackendType(), MaxBackendTypeLen); err != nil {
		return 0, err
	}
	if n := len(f.GetRequiredFeatures()); n > MaxFeatures {
		return 0, malformed("%d required features exceed %d", n, MaxFeatures)
	}
	if err := CheckPrice(f.GetMaxInputPriceWei()); err != nil {
		return 0, err
	}
	if err := CheckPrice(f.GetMaxOutputPriceWei()); err != nil {
		return 0, err
	}
	return limit, nil
}

func checkVersion(v uint32) error {
	switch {
	case v == 0:
		return malformed("protocol_version is not set")
	case v > Version:
		return Errorf(ErrUnsupportedVersion.Code, "protocol_version %d is newer than %d", v, Version)
	}
	return nil
}

// checkPeerID accepts the binary form of a libp2p peer id: a multihash with
// the identity (0x00) or sha2-256 (0x12) function. The function check matters:
// the 52-character base58 text of an Ed25519 peer id also parses as a
// multihash ('1' as the function, '2' as the length 50), so without it a
// client sending the text form would be told "not found", not "malformed".
func checkPeerID(name string, b []byte) error {
	if _, err := peer.IDFromBytes(b); err != nil {
		return malformed("%s is not a peer id: %v", name, err)
	}
	if b[0] != 0x00 && b[0] != 0x12 {
		return malformed("%s is not a binary peer id (multihash function 0x%x, want identity or sha2-256)", name, b[0])
	}
	return nil
}

// CheckEVMAddress checks an announcement's evm_address: empty, or 0x and
// 40 hex digits. An executor checks its own at start with the words a
// validator would use.
func CheckEVMAddress(s string) error { return checkEVMAddress(s) }

func checkEVMAddress(s string) error {
	if s == "" {
		return nil
	}
	if len(s) != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return malformed("evm_address %q: want 0x and 40 hex digits", truncate(s))
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return malformed("evm_address %q: want 0x and 40 hex digits", s)
		}
	}
	return nil
}

func checkLen(name, v string, max int) error {
	if len(v) > max {
		return malformed("%s of %d bytes exceeds %d", name, len(v), max)
	}
	return nil
}

func malformed(format string, args ...any) *Error {
	return Errorf(ErrMalformed.Code, format, args...)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// truncate keeps error messages short when the input is hostile.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// announcementReserve is what an announcement needs besides its models: ids,
// addresses, the envelope's key, signature and payload type, and the
// GossipMessage around it.
const announcementReserve = 4 << 10

// CheckModelSetSize reports whether an announcement of these models fits
// in one gossip message. The per-field limits alone allow far larger sets.
func CheckModelSetSize(models []*pb.ModelDescriptor) error {
	n := 0
	for _, m := range models {
		n += proto.Size(m) + 3 // field tag and length
	}
	if n+announcementReserve > MaxGossipMessageSize {
		return Errorf(ErrMalformed.Code, "model set of %d bytes does not fit in a %d-byte announcement; shorten metadata or serve fewer models", n, MaxGossipMessageSize-announcementReserve)
	}
	return nil
}

// modelIDChars marks the bytes a model id may hold: [A-Za-z0-9._:/@-].
var modelIDChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "._:/@-" {
		t[c] = true
	}
	return t
}()

// validModelID is ValidModelID without the regular expression: the checks
// run it for every model of every heartbeat, where the regexp cost more
// than all the other field checks together.
func validModelID(id string) bool {
	if len(id) == 0 || len(id) > MaxModelIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !modelIDChars[id[i]] {
			return false
		}
	}
	return true
}
