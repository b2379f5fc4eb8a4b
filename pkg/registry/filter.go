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
	}
}

// match reports whether one executor's model passes: backend type equal
// ignoring case, context length at least the minimum, every required
// feature offered (ignoring case), prices within the bounds, and, unless
// asked for, neither stale nor unavailable.
func (f *filter) match(m *model, stale bool) bool {
	p := m.prof
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
