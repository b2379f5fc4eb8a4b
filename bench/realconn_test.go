package bench

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/rs/zerolog"

	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
)

// BenchmarkRealConnections runs real executors, each its own libp2p host
// with its own connection, in child processes (at most 250 per process,
// at least two processes) against
// one validator with --max-executors sized for them, at a 2 s heartbeat:
// -full 1,000 executors for 2 minutes, CI 20 for 5 s. It reports the
// validator's connection closes (trimming churn), executors it reported
// stale (all are alive: each one is wrong), its CPU and memory, and what
// 1,000 connections cost it. TestRealConnections (build tag realconn)
// asserts the same at 200 executors.
func BenchmarkRealConnections(b *testing.B) {
	res := realConnections(b, size(20, 1000), size(5*time.Second, 2*time.Minute))
	res.report(b)
	for range b.N - 1 { // one run of minutes, however many iterations asked
	}
}

// realConnResult is what one run measured.
type realConnResult struct {
	Hosts, Procs int
	Window       time.Duration
	ReadyAfter   time.Duration // all connected, registered and verified

	// The validator's connections: opened over the run, closed during the
	// steady window and over the whole run (before its end).
	Opened, ClosedInWindow, Closed uint64
	// The executors' side: connections to the validator they saw closed.
	ExecutorClosed uint64
	// Stale is how many times the validator reported an executor stale.
	Stale      uint64
	Heartbeats uint64  // accepted in the window
	Expected   float64 // heartbeats sent in the window, about

	Cores              float64 // the validator's CPU over the window
	ChildCores         float64 // all hosts processes together
	Idle, Full         Memory  // the validator before the executors and at the end
	FDsIdle, FDsFull   int     // its open file descriptors then
	ChildRSS           uint64  // all hosts processes together
	ConnectedAtTheEnd  int     // executors connected to the validator, their count
	ExecutorsAtTheEnd  uint64  // registered
	UnverifiedAtTheEnd uint64
}

// realConnInterval is the executors' heartbeat interval.
const realConnInterval = 2 * time.Second

// hostsPerProc is how many executors one hosts process runs at most.
const hostsPerProc = 250

func realConnections(tb testing.TB, hosts int, window time.Duration) realConnResult {
	tb.Helper()
	res := realConnResult{Hosts: hosts, Window: window, Procs: max(2, (hosts+hostsPerProc-1)/hostsPerProc)}
	stale := &logCounter{needle: []byte("Executor is stale")}
	v, _ := nodetest.StartValidator(tb, func(cfg *validator.Config) {
		cfg.QueryRate = 0
		cfg.SweepInterval = time.Second
		cfg.Registry.MaxExecutors = hosts // the connection limits follow it
		cfg.Registry.MaxPerIP = 0         // every host is 127.0.0.1
		cfg.Logger = zerolog.New(stale).Level(zerolog.InfoLevel)
	})
	var opened, closed atomic.Uint64
	v.Host().Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(network.Network, network.Conn) { opened.Add(1) },
		DisconnectedF: func(network.Network, network.Conn) { closed.Add(1) },
	})
	res.Idle, res.FDsIdle = ReadMemory(), openFDs()

	procs := make([]*HostsProc, res.Procs)
	for i := range procs {
		p, err := StartHosts()
		if err != nil {
			tb.Fatal(err)
		}
		procs[i] = p
	}
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Go(func() { p.Close() })
		}
		wg.Wait()
	}
	tb.Cleanup(stopAll)

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	first := 0
	for i, p := range procs {
		n := hosts / len(procs)
		if i < hosts%len(procs) {
			n++
		}
		first += n
		first := first - n
		wg.Go(func() {
			_, errs[i] = p.Do(HostsRequest{Op: "start", Validator: v.Addrs()[0], Executors: n, First: first, Interval: realConnInterval, Rate: 100})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	nodetest.EventuallyWithin(tb, 3*time.Minute, "every executor registered and verified", func() error {
		st := v.Stats()
		if int(st.GetExecutors()) != hosts || st.GetUnverified() != 0 {
			return fmt.Errorf("%d of %d executors registered, %d unverified, %d connections", st.GetExecutors(), hosts, st.GetUnverified(), len(v.Host().Network().Conns()))
		}
		return nil
	})
	res.ReadyAfter = time.Since(start)

	closed0, hb0 := closed.Load(), v.Stats().GetHeartbeatsAccepted()
	child0 := childStats(tb, procs)
	meter := StartCPU()
	time.Sleep(window)
	cpu, wall := meter.Stop()
	st := v.Stats()
	child1 := childStats(tb, procs)
	res.Full, res.FDsFull = ReadMemory(), openFDs()

	res.Cores = cpu.Seconds() / wall.Seconds()
	res.ChildCores = (child1.CPU - child0.CPU).Seconds() / wall.Seconds()
	res.ChildRSS = child1.RSS
	res.ConnectedAtTheEnd = child1.Connected
	res.ExecutorClosed = child1.Closed
	res.Opened, res.Closed, res.ClosedInWindow = opened.Load(), closed.Load(), closed.Load()-closed0
	res.Heartbeats = st.GetHeartbeatsAccepted() - hb0
	res.Expected = float64(hosts) * wall.Seconds() / realConnInterval.Seconds()
	res.Stale = stale.n.Load()
	res.ExecutorsAtTheEnd, res.UnverifiedAtTheEnd = st.GetExecutors(), st.GetUnverified()
	stopAll()
	return res
}

// problems lists what the run shows wrong: a connection closed, an
// executor shown stale or lost, heartbeats missing.
func (r realConnResult) problems() []string {
	var out []string
	if r.Closed != 0 || r.ExecutorClosed != 0 {
		out = append(out, fmt.Sprintf("connections closed while every executor ran: %d seen by the validator (%d in the steady window), %d by the executors", r.Closed, r.ClosedInWindow, r.ExecutorClosed))
	}
	if r.Stale != 0 {
		out = append(out, fmt.Sprintf("the validator reported live executors stale %d times", r.Stale))
	}
	if r.ConnectedAtTheEnd != r.Hosts || int(r.ExecutorsAtTheEnd) != r.Hosts || r.UnverifiedAtTheEnd != 0 {
		out = append(out, fmt.Sprintf("at the end: %d of %d executors connected, %d registered, %d unverified", r.ConnectedAtTheEnd, r.Hosts, r.ExecutorsAtTheEnd, r.UnverifiedAtTheEnd))
	}
	// Heartbeats are jittered ±10 %; a validator that loses some falls
	// below 85 % of the expected count.
	if float64(r.Heartbeats) < 0.85*r.Expected {
		out = append(out, fmt.Sprintf("%d heartbeats accepted in the window, about %.0f sent", r.Heartbeats, r.Expected))
	}
	return out
}

func (r realConnResult) report(tb testing.TB) {
	perK := func(full, idle uint64) float64 { return MiB(full-min(full, idle)) * 1000 / float64(r.Hosts) }
	tb.Logf("%d executors in %d processes, each its own host and connection, heartbeat %s: all registered and verified after %s; steady window %s",
		r.Hosts, r.Procs, realConnInterval, r.ReadyAfter.Round(time.Millisecond), r.Window)
	tb.Logf("validator: %d connections opened, %d closed (%d in the window), executors saw %d closed; %d stale reports; %d heartbeats accepted in the window, %.0f expected",
		r.Opened, r.Closed, r.ClosedInWindow, r.ExecutorClosed, r.Stale, r.Heartbeats, r.Expected)
	tb.Logf("validator: %.3f cores; RSS %.0f MiB (idle %.0f), live heap %.0f MiB (idle %.0f), %d file descriptors (idle %d); per 1,000 connections: %.0f MiB RSS, %.0f MiB heap, %.0f fds",
		r.Cores, MiB(r.Full.RSS), MiB(r.Idle.RSS), MiB(r.Full.HeapAlloc), MiB(r.Idle.HeapAlloc), r.FDsFull, r.FDsIdle,
		perK(r.Full.RSS, r.Idle.RSS), perK(r.Full.HeapAlloc, r.Idle.HeapAlloc), float64(r.FDsFull-r.FDsIdle)*1000/float64(r.Hosts))
	tb.Logf("hosts processes: %.2f cores, RSS %.0f MiB together", r.ChildCores, MiB(r.ChildRSS))
	if b, ok := tb.(*testing.B); ok {
		b.ReportMetric(float64(r.ClosedInWindow), "closed-in-window")
		b.ReportMetric(float64(r.Closed), "closed")
		b.ReportMetric(float64(r.Stale), "stale-reports")
		b.ReportMetric(float64(r.Heartbeats)/r.Expected, "heartbeats-ratio")
		b.ReportMetric(r.Cores, "validator-cores")
		b.ReportMetric(MiB(r.Full.RSS), "validator-RSS-MiB")
		b.ReportMetric(perK(r.Full.RSS, r.Idle.RSS), "RSS-MiB/1000conns")
		b.ReportMetric(perK(r.Full.HeapAlloc, r.Idle.HeapAlloc), "heap-MiB/1000conns")
		b.ReportMetric(r.ReadyAfter.Seconds(), "ready-s")
	}
	for _, p := range r.problems() {
		tb.Error(p)
	}
}

// childStats sums the hosts processes' counters.
func childStats(tb testing.TB, procs []*HostsProc) HostsReply {
	tb.Helper()
	var sum HostsReply
	for _, p := range procs {
		rep, err := p.Do(HostsRequest{Op: "stats"})
		if err != nil {
			tb.Fatal(err)
		}
		sum.Connected += rep.Connected
		sum.Opened += rep.Opened
		sum.Closed += rep.Closed
		sum.CPU += rep.CPU
		sum.RSS += rep.RSS
	}
	return sum
}

// openFDs counts this process's open file descriptors (0 without /proc).
func openFDs() int {
	es, _ := os.ReadDir("/proc/self/fd")
	return len(es)
}

// logCounter counts the log lines that contain needle.
type logCounter struct {
	needle []byte
	n      atomic.Uint64
}

func (c *logCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, c.needle) {
		c.n.Add(1)
	}
	return len(p), nil
}
