package metrics

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// However many model ids a hostile network makes a node see, at most the
// cap get a label; the rest, and anything that is not a model id, count
// as "other". A model that got a label keeps it.
func TestModelLabelsAreCapped(t *testing.T) {
	m := NewModelLabels(64)
	for i := range 64 {
		if got, want := m.Label(fmt.Sprintf("m%d", i)), fmt.Sprintf("m%d", i); got != want {
			t.Fatalf("Label(%q) = %q with room left, want the id", want, got)
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10_000 {
				if got := m.Label(fmt.Sprintf("flood-%d-%d", w, i)); got != Other {
					t.Errorf("model past the cap labelled %q, want %q", got, Other)
					return
				}
			}
		})
	}
	wg.Wait()
	if m.Len() != 64 {
		t.Errorf("%d models labelled, want the cap of 64", m.Len())
	}
	if got := m.Label("m7"); got != "m7" {
		t.Errorf("a model labelled before the cap was reached lost its label: %q", got)
	}
}

func TestModelLabelsRefuseWhatIsNoModelID(t *testing.T) {
	m := NewModelLabels(0)
	for _, id := range []string{"", "other", "with space", "new\nline", strings.Repeat("x", 129), "\xff\xfe"} {
		if got := m.Label(id); got != Other {
			t.Errorf("Label(%q) = %q, want %q", id, got, Other)
		}
	}
	if m.Len() != 0 {
		t.Errorf("%d labels taken by invalid ids, want none", m.Len())
	}
	if got := m.Label("llama3.2:3b"); got != "llama3.2:3b" {
		t.Errorf("Label of a valid id = %q", got)
	}
}

// A label already given costs no allocation: the hot paths (a model's
// load at each scrape, each request) look it up.
func TestModelLabelLookupDoesNotAllocate(t *testing.T) {
	m := NewModelLabels(0)
	id := "qwen2.5:7b"
	m.Label(id)
	if n := testing.AllocsPerRun(1000, func() { m.Label(id) }); n != 0 {
		t.Errorf("%v allocations per lookup, want 0", n)
	}
}
