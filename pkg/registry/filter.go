package registry

import (
	"strings"

	"github.com/lloom/lloom/protocol/pb"
)

// filter is a query's pb.QueryFilters, prepared once per query.
type filter struct {
	backend       string
	minCtx        uint32
	features      []string
	maxIn, maxOut string // normalized by normPrice
	boundIn       bool   // maxIn applies
	boundOut      bool
	stale         bool // include stale executors
	unavailable   bool // include models announced unavailable
	unverified    bool // include executors not verified (DESIGN §10)
}

func newFilter(f *pb.QueryFilters) filter {
	return filter{
		backend:     f.GetBackendType(),
		minCtx:      f.GetMinContextLength(),
		features:    f.GetRequiredFeatures(),
		maxIn:       normPrice(f.GetMaxInputPriceWei()),
		maxOut:      normPrice(f.GetMaxOutputPriceWei()),
		boundIn:     f.GetMaxInputPriceWei() != "",
		boundOut:    f.GetMaxOutputPriceWei() != "",
		stale:       f.GetIncludeStale(),
		unavailable: f.GetIncludeUnavailable(),
		unverified:  f.GetIncludeUnverified(),
	}
}

// matchProfile reports whether a verified executor's model of profile p
// passes: backend type equal ignoring case, context length at least the
// minimum, every required feature offered (ignoring case), prices within
// the bounds, and, unless asked for, neither stale nor unavailable. (memo
// adds the executor's verification.)
func (f *filter) matchProfile(p *profile, stale bool) bool {
	switch {
	case stale && !f.stale,
		!p.available && !f.unavailable,
		p.maxCtx < f.minCtx,
		f.backend != "" && !strings.EqualFold(p.backend, f.backend),
		f.boundIn && comparePrice(p.inPrice, f.maxIn) > 0,
		f.boundOut && comparePrice(p.outPrice, f.maxOut) > 0:
		return false
	}
	for _, want := range f.features {
		if !hasFeature(p.features, want) {
			return false
		}
	}
	return true
}

// memo remembers f's verdict on the last two profiles it saw (stale and
// unverified aside): the executors of one model share a few profiles, often
// in runs or alternating, so most entries of a scan cost a pointer
// comparison.
type memo struct {
	f        *filter
	profiles []*profile // by number: Registry.profNos.byNo
	n0, n1   uint32     // the profile numbers seen, plus one (0: none)
	ok0, ok1 bool
}

func newMemo(f *filter, r *Registry) memo { return memo{f: f, profiles: r.profNos.byNo} }

// match is matchProfile for a slot, with the executor's verification.
func (m *memo) match(s *slot, stale bool) bool {
	if stale && !m.f.stale || s.unverified() && !m.f.unverified {
		return false
	}
	switch n := s.pv>>1 + 1; n {
	case m.n0:
		return m.ok0
	case m.n1:
		return m.ok1
	default:
		ok := m.f.matchProfile(m.profiles[n-1], false)
		m.n1, m.ok1 = m.n0, m.ok0
		m.n0, m.ok0 = n, ok
		return ok
	}
}

func hasFeature(have []string, want string) bool {
	for _, h := range have {
		if strings.EqualFold(h, want) {
			return true
		}
	}
	return false
}

// normPrice strips leading zeros from a decimal wei amount that
// protocol.CheckPrice accepted, so that "" and "000" both become "", zero.
// It returns a substring: no allocation, no copy.
func normPrice(s string) string {
	return strings.TrimLeft(s, "0")
}

// comparePrice compares two normalized decimal amounts of any size: the
// longer is larger; of equal length, the lexically greater.
func comparePrice(a, b string) int {
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return strings.Compare(a, b)
}
