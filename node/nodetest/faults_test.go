package nodetest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

func status(t *testing.T, v *validator.Validator, e *executor.Executor) pb.ExecutorStatus {
	t.Helper()
	ent, ok := v.Registry().Get(e.ID(), time.Now())
	if !ok {
		return pb.ExecutorStatus_EXECUTOR_STATUS_UNSPECIFIED
	}
	return ent.GetStatus()
}

func wantStatus(t *testing.T, v *validator.Validator, e *executor.Executor, want pb.ExecutorStatus) func() error {
	return func() error {
		if got := status(t, v, e); got != want {
			return fmt.Errorf("executor %s is %v, want %v", e.ID(), got, want)
		}
		return nil
	}
}

// A partition between an executor and its validator: stale during, healthy
// after, without a restart.
func TestPartitionHeals(t *testing.T) {
	v, _ := StartValidator(t, func(c *validator.Config) {
		c.Registry.StaleAfter = time.Second
		c.Registry.RemoveAfter = time.Minute
	})
	cut := NewPartition()
	e, _ := StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("gpt-4", 2)}, func(c *executor.Config) { c.Gater = cut })
	Eventually(t, "registered", Registered(v, e.ID(), "gpt-4"))
	cut.Cut(e.Host(), v.ID())
	Eventually(t, "stale while cut off", wantStatus(t, v, e, pb.ExecutorStatus_EXECUTOR_STATUS_STALE))
	cut.Heal()
	Eventually(t, "healthy once healed", wantStatus(t, v, e, pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY))
}

// Clock skew within the contract's bounds is accepted; a validator whose
// clock is more than two minutes behind the executor's sees its messages
// as from the future and refuses them with 1003.
func TestClockSkew(t *testing.T) {
	for _, tc := range []struct {
		skew     time.Duration // validator clock minus executor clock
		accepted bool
	}{
		{time.Minute, true},
		{-time.Minute, true},
		{-3 * time.Minute, false},
	} {
		t.Run(tc.skew.String(), func(t *testing.T) {
			v, _ := StartValidator(t, func(c *validator.Config) {
				c.Now = func() time.Time { return time.Now().Add(tc.skew) }
			})
			e, _ := StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("gpt-4", 2)}, nil)
			if tc.accepted {
				Eventually(t, "registered despite skew", Registered(v, e.ID(), "gpt-4"))
				return
			}
			Eventually(t, "refused as expired", func() error {
				if n := v.Stats().GetMessagesIgnored(); n == 0 {
					return fmt.Errorf("nothing refused yet")
				}
				return nil
			})
			if err := Absent(v, e.ID())(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An executor restarted with the same identity and another model set: the
// new set replaces the old, after a clean stop and after a crash.
func TestRestartWithNewModels(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			v, _ := StartValidator(t, nil)
			key := Key(t)
			withKey := func(c *executor.Config) { c.Key = key }
			e1, r1 := StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("old-a", 1), Model("old-b", 1)}, withKey)
			Eventually(t, "first run registered", Registered(v, e1.ID(), "old-a", "old-b"))
			if crash {
				e1.Host().Close()
			} else {
				r1.Stop(t)
				Eventually(t, "removed after a clean stop", Absent(v, e1.ID()))
				e1.Close() // the process exits
			}
			e2, _ := StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("new-c", 1)}, withKey)
			Eventually(t, "second run replaces the set", Registered(v, e2.ID(), "new-c"))
			res, err := NewClient(t, v).FindModel(context.Background(), "old-a", &pb.QueryFilters{IncludeStale: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Executors) != 0 {
				t.Fatalf("old-a still listed after the restart: %d executors", len(res.Executors))
			}
		})
	}
}
