package executor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

// clockAhead is how far the first run's clock is ahead: within the two
// minutes a validator accepts from the future, so that its messages are
// taken, and the second run's clock is that much behind them.
const clockAhead = 90 * time.Second

// An executor whose clock was ahead is restarted after the clock stepped
// back (NTP): a validator that held its announcement, or the tombstone of
// its REMOVAL, takes the new run's announcement, because the numbers
// continue from its sequence file rather than from the clock — after a
// clean stop and after a crash (the file as it was while running). Without
// the file, the same restart is ignored as a replay.
func TestRestartAfterClockStepBack(t *testing.T) {
	for _, tc := range []struct {
		name      string
		crash     bool
		noSeqFile bool
	}{
		{name: "clean stop"},
		{name: "crash", crash: true},
		{name: "no sequence file", noSeqFile: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := nodetest.StartValidator(t, nil)
			key := nodetest.Key(t)
			seqFile := filepath.Join(t.TempDir(), "executor.key.seq")
			start := func(model string, now func() time.Time) (*executor.Executor, *nodetest.Running) {
				return nodetest.StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{nodetest.Model(model, 1)}, func(c *executor.Config) {
					c.Key = key
					c.Now = now
					if !tc.noSeqFile {
						c.SeqFile = seqFile
					}
				})
			}

			first, run := start("before-step", func() time.Time { return time.Now().Add(clockAhead) })
			nodetest.Eventually(t, "first run registered", nodetest.Registered(v, first.ID(), "before-step"))
			held := first.AnnouncementSeq()
			var whileRunning []byte
			if tc.crash {
				var err error
				if whileRunning, err = os.ReadFile(seqFile); err != nil {
					t.Fatal(err)
				}
			}
			run.Stop(t) // publishes the REMOVAL: the validator keeps a tombstone of held
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			nodetest.Eventually(t, "first run removed", nodetest.Absent(v, first.ID()))
			if tc.crash {
				// A crash leaves the file as it was while running: a
				// reservation, not the numbers used.
				if err := os.WriteFile(seqFile, whileRunning, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			ignored := v.Stats().GetMessagesIgnored()
			second, _ := start("after-step", time.Now)
			if tc.noSeqFile {
				// Its announcement reaches the validator and is ignored as
				// older than the tombstone; the heartbeats that follow
				// (every 200 ms) bring nothing back.
				nodetest.Eventually(t, "restart ignored", func() error {
					if v.Stats().GetMessagesIgnored() == ignored {
						return fmt.Errorf("no message ignored since the restart")
					}
					return nil
				})
				time.Sleep(time.Second)
				if err := nodetest.Absent(v, second.ID())(); err == nil {
					return
				}
				t.Fatalf("the restart with the clock stepped back was taken without a sequence file: seq %d after %d held; the test shows nothing", second.AnnouncementSeq(), held)
			}
			nodetest.Eventually(t, "second run registered", nodetest.Registered(v, second.ID(), "after-step"))
			if got := second.AnnouncementSeq(); got <= held {
				t.Errorf("second run announced seq %d, not above the %d held", got, held)
			}
		})
	}
}
