package client

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

// Loads near the top of uint32 must not overflow the utilization
// comparison, which cross-multiplies load and capacity: (2^33-2) x
// (2^31+1) wraps in 64 bits to 2^32-2, which would put an executor with
// twice its capacity queued before a nearly idle one.
func TestCompareLoadDoesNotOverflow(t *testing.T) {
	const top = 1<<32 - 1
	full := &Executor{PeerID: peer.ID("a"), Status: pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY, Active: top, Queued: top, Capacity: top}
	idle := &Executor{PeerID: peer.ID("b"), Status: pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY, Active: 1, Capacity: 1<<31 + 1}
	if c := compareLoad(idle, full); c >= 0 {
		t.Fatalf("compareLoad(nearly idle, full) = %d, want the nearly idle one first", c)
	}
	if c := compareLoad(full, idle); c <= 0 {
		t.Fatalf("compareLoad(full, nearly idle) = %d, want the full one last", c)
	}
}
