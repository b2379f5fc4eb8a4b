package registry

import (
	"encoding/binary"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// profile is what filters and ordering need of a model descriptor, less its
// model id. Executors of one deployment announce the same few profiles over
// and over, so the registry keeps each distinct profile once, counting its
// users, and a model costs a pointer instead of a copy of its strings.
type profile struct {
	key       string // the profile encoded; the strings below are parts of it
	refs      int    // models using the profile
	backend   string
	features  []string
	inPrice   string // normalized by normPrice; "" is zero
	outPrice  string
	maxCtx    uint32
	capacity  uint32 // as announced; 0 = none given
	available bool
	no        uint32 // its number in Registry.profNos, while used
}

// acquire returns the profile of d, interned, with one more user.
func (r *Registry) acquire(d *pb.ModelDescriptor) *profile {
	// The key holds each string with its length first, so that no two
	// profiles share a key; spans records where each string sits in it.
	var buf [2 * (3 + protocol.MaxFeatures)]int
	spans := buf[:0]
	b := r.scratch[:0]
	put := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		spans = append(spans, len(b), len(b)+len(s))
		b = append(b, s...)
	}
	put(d.GetBackendType())
	put(normPrice(d.GetPricing().GetInputTokenPriceWei()))
	put(normPrice(d.GetPricing().GetOutputTokenPriceWei()))
	b = binary.AppendUvarint(b, uint64(len(d.GetFeatures())))
	for _, f := range d.GetFeatures() {
		put(f)
	}
	b = binary.AppendUvarint(b, uint64(d.GetMaxContextLength()))
	b = binary.AppendUvarint(b, uint64(d.GetCapacity()))
	if d.GetAvailable() {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	r.scratch = b

	if p, ok := r.profiles[string(b)]; ok {
		p.refs++
		return p
	}
	key := string(b)
	p := &profile{
		key:       key,
		refs:      1,
		backend:   key[spans[0]:spans[1]],
		inPrice:   key[spans[2]:spans[3]],
		outPrice:  key[spans[4]:spans[5]],
		maxCtx:    d.GetMaxContextLength(),
		capacity:  d.GetCapacity(),
		available: d.GetAvailable(),
	}
	if nf := len(d.GetFeatures()); nf > 0 {
		p.features = make([]string, nf)
		for i := range nf {
			p.features[i] = key[spans[6+2*i]:spans[7+2*i]]
		}
	}
	p.no = r.profNos.add(p)
	r.profiles[key] = p
	return p
}

// release drops one user of p, forgetting p with its last user.
func (r *Registry) release(p *profile) {
	p.refs--
	if p.refs == 0 {
		delete(r.profiles, p.key)
		r.profNos.remove(p.no)
	}
}
