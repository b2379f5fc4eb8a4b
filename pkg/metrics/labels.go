package metrics

import (
	"strings"
	"sync"

	lp "github.com/lloom/lloom/protocol"
)

// Other is the label value of everything folded: models past the cap, or
// not known to the node, and wire codes the contract does not define.
const Other = "other"

// DefaultMaxModels is how many model ids one node gives a label of their
// own. Announcements and requests name models that remote peers choose;
// with the cap, a metric labelled by model holds at most this many series
// (plus "other") per other label value, however many ids appear.
const DefaultMaxModels = 64

// ModelLabels hands out model label values: a model id gets its own label
// while fewer than the cap have one, and keeps it for the life of the
// node; any later model is counted under "other". The ids that come first
// win the labels: callers give a label only to a model the node serves,
// or found executors for, so that a request naming a made-up id does not
// take one. It is safe for concurrent use; a model already labelled costs
// a map lookup under a read lock.
type ModelLabels struct {
	max   int
	mu    sync.RWMutex
	known map[string]string // guarded by mu: model id -> its label (the same string)
}

// NewModelLabels returns a set of at most max model labels (0 or less:
// DefaultMaxModels).
func NewModelLabels(max int) *ModelLabels {
	if max <= 0 {
		max = DefaultMaxModels
	}
	return &ModelLabels{max: max, known: make(map[string]string, max)}
}

// Label returns model's label value: the id itself if it has, or can
// still get, a label of its own; else Other. An id that is not a valid
// model id (protocol.ValidModelID) is always Other.
func (m *ModelLabels) Label(model string) string {
	m.mu.RLock()
	l, ok := m.known[model]
	full := len(m.known) >= m.max
	m.mu.RUnlock()
	switch {
	case ok:
		return l
	case full || model == Other || !lp.ValidModelID(model):
		return Other
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.known[model]; ok {
		return l
	}
	if len(m.known) >= m.max {
		return Other
	}
	// A copy: the id may point into a large decoded message.
	l = strings.Clone(model)
	m.known[l] = l
	return l
}

// Len is how many models have a label of their own.
func (m *ModelLabels) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.known)
}
