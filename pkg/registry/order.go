package registry

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"
)

// candidate is one executor's entry for a model, with what ordering needs
// computed once. It holds no pointers, so that sorting moves small plain
// values and no write barriers.
type candidate struct {
	used  uint64    // active + queued
	cap   uint64    // effective capacity, >= 1
	idKey [2]uint64 // the executor's idKey
	ref   int32     // index into the model's slots
	stale bool
}

// ranking is the executors of one model that passed a query's filters.
// It points into the model's index: use it under the read lock.
type ranking struct {
	slots []slot
	cs    []candidate
}

// rank collects the executors of idx whose model passes f, with cut the
// staleCut of the query's time, reusing cs. It reads the slots in order
// and each passing executor's id prefix.
func (r *Registry) rank(idx *modelIndex, f *filter, cut int64, cs []candidate) ranking {
	if cap(cs) < len(idx.slots) {
		cs = make([]candidate, 0, len(idx.slots))
	}
	cs = cs[:0]
	m := newMemo(f, r)
	for i := range idx.slots {
		s := &idx.slots[i]
		stale := s.seen < cut
		if m.match(s, stale) {
			cs = append(cs, candidate{used: s.used(), cap: uint64(s.cap), idKey: s.e.idKey, ref: int32(i), stale: stale})
		}
	}
	return ranking{slots: idx.slots, cs: cs}
}

func (k ranking) executor(c candidate) *executor { return k.slots[c.ref].e }

func (k ranking) slot(c candidate) *slot { return &k.slots[c.ref] }

// sort puts the candidates least loaded first.
func (k ranking) sort() {
	slices.SortFunc(k.cs, k.compare)
}

// sortTop puts the n least loaded candidates first, in order, leaving the
// rest in no order: a page of a long list costs O(len log n), not a full
// sort. It keeps a max-heap of the best n in cs[:n].
func (k ranking) sortTop(n int) {
	cs := k.cs
	if n >= len(cs)/2 {
		k.sort()
		return
	}
	if n <= 0 {
		return
	}
	for i := n/2 - 1; i >= 0; i-- {
		k.siftDown(i, n)
	}
	for j := n; j < len(cs); j++ {
		if k.compare(cs[j], cs[0]) < 0 {
			cs[0], cs[j] = cs[j], cs[0]
			k.siftDown(0, n)
		}
	}
	slices.SortFunc(cs[:n], k.compare)
}

// siftDown restores the max-heap cs[:n] below i.
func (k ranking) siftDown(i, n int) {
	cs := k.cs
	for {
		big := i
		if l := 2*i + 1; l < n && k.compare(cs[l], cs[big]) > 0 {
			big = l
		}
		if r := 2*i + 2; r < n && k.compare(cs[r], cs[big]) > 0 {
			big = r
		}
		if big == i {
			return
		}
		cs[i], cs[big] = cs[big], cs[i]
		i = big
	}
}

// compare orders by compareLoad, then by peer id bytes, so that the order
// is deterministic; the id prefixes settle nearly every tie without
// touching the executors.
func (k ranking) compare(a, b candidate) int {
	if c := compareLoad(a, b); c != 0 {
		return c
	}
	if c := cmp.Compare(a.idKey[0], b.idKey[0]); c != 0 {
		return c
	}
	if c := cmp.Compare(a.idKey[1], b.idKey[1]); c != 0 {
		return c
	}
	return strings.Compare(string(k.executor(a).id), string(k.executor(b).id))
}

// compareLoad orders a model's executors least loaded first: live before
// stale; then by utilization used/cap ascending; then by used ascending;
// then by capacity descending (ranking.compare then breaks ties by peer
// id). Utilization is compared by cross-multiplying
// in 128 bits: used < 2^33 and cap < 2^32, so a product can pass 64 bits.
func compareLoad(a, b candidate) int {
	if a.stale != b.stale {
		if b.stale {
			return -1
		}
		return 1
	}
	if c := CompareProducts(a.used, b.cap, b.used, a.cap); c != 0 {
		return c
	}
	switch {
	case a.used < b.used:
		return -1
	case a.used > b.used:
		return 1
	case a.cap > b.cap:
		return -1
	case a.cap < b.cap:
		return 1
	}
	return 0
}

// CompareProducts compares x1*y1 with x2*y2 without overflow (128-bit
// products), as -1, 0 or 1.
func CompareProducts(x1, y1, x2, y2 uint64) int {
	h1, l1 := bits.Mul64(x1, y1)
	h2, l2 := bits.Mul64(x2, y2)
	switch {
	case h1 < h2, h1 == h2 && l1 < l2:
		return -1
	case h1 > h2, h1 == h2 && l1 > l2:
		return 1
	}
	return 0
}
