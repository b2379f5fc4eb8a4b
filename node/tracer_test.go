package node

import (
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Messages the router drops before our validator sees them are counted by
// reason; rejections by our own validator are not drops.
func TestTracerCountsDropsBeforeValidation(t *testing.T) {
	tr := NewTracer()
	tr.RejectMessage(nil, pubsub.RejectValidationQueueFull)
	tr.RejectMessage(nil, pubsub.RejectValidationQueueFull)
	tr.RejectMessage(nil, pubsub.RejectValidationThrottled)
	tr.RejectMessage(nil, pubsub.RejectValidationFailed)
	tr.RejectMessage(nil, pubsub.RejectValidationIgnored)
	d := tr.Dropped()
	if d.ValidationQueueFull != 2 || d.ValidationThrottled != 1 {
		t.Fatalf("drops %+v, want 2 queue-full and 1 throttled", d)
	}
}
