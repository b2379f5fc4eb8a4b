//go:build realconn

package bench

import (
	"testing"
	"time"
)

// TestRealConnections is the CI size of BenchmarkRealConnections: 200
// executors, each its own host and connection, in two child processes, against a
// validator with --max-executors 200, for 90 s at a 2 s heartbeat. go-libp2p's
// default connection manager would close about 40 of these connections once
// its one-minute grace ended, and again every minute; lloom's validator
// must close none and report no executor stale. It runs for longer than
// `make test` allows, and with two cores busy, so `make test-connections`
// runs it on its own.
func TestRealConnections(t *testing.T) {
	res := realConnections(t, 200, 90*time.Second)
	res.report(t)
}
