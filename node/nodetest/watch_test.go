package nodetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/validator"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// feedExec is an executor that exists only in a validator's registry: the
// test applies its signed messages directly, to make changes at a known
// rate without a network of executors.
type feedExec struct {
	key crypto.PrivKey
	id  peer.ID
}

func newFeedExecs(t *testing.T, v *validator.Validator, n int, model string) []feedExec {
	t.Helper()
	xs := make([]feedExec, n)
	now := time.Now()
	for i := range xs {
		k := Key(t)
		id, _ := peer.IDFromPrivateKey(k)
		xs[i] = feedExec{k, id}
		env, err := lp.SealAnnouncement(&pb.Announcement{
			ExecutorId: []byte(id), Seq: 1, Kind: pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL,
			Models: []*pb.ModelDescriptor{Model(model, 1000)}, IssuedAtMs: now.UnixMilli(), ProtocolVersion: lp.Version,
		}, k)
		if err != nil {
			t.Fatal(err)
		}
		a, err := lp.OpenAnnouncement(env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Registry().Reached(a, netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), now); err != nil {
			t.Fatal(err)
		}
	}
	return xs
}

// heartbeat is x's heartbeat seq, with active requests, verified.
func (x feedExec) heartbeat(t *testing.T, model string, seq uint64, active uint32) *lp.VerifiedHeartbeat {
	env, err := lp.SealHeartbeat(&pb.Heartbeat{ExecutorId: []byte(x.id), Seq: seq, AnnouncementSeq: 1, IssuedAtMs: time.Now().UnixMilli(),
		Load: &pb.Load{Models: []*pb.ModelLoad{{ModelId: model, Active: active, Capacity: 1000}}}}, x.key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := lp.OpenHeartbeat(env)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// feedLoad applies the heartbeats at rate per second, each a load change.
func feedLoad(t *testing.T, v *validator.Validator, hbs []*lp.VerifiedHeartbeat, rate int) {
	t.Helper()
	const tick = 10 * time.Millisecond
	per := rate * int(tick) / int(time.Second)
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for i := 0; i < len(hbs); i += per {
		<-tk.C
		for _, h := range hbs[i:min(i+per, len(hbs))] {
			if _, err := v.Registry().ApplyHeartbeat(h, time.Now()); err != nil {
				t.Fatalf("heartbeat: %v", err)
			}
		}
	}
}

// The change feed under 1,000 changes a second: a subscriber that reads
// gets every change, in order, without a gap; one that stops reading is
// cut off once it falls out of the validator's history, without holding
// up the other or growing the validator's memory.
func TestWatchUnderThousandChangesASecond(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const (
		model   = "feed-model"
		execs   = 50
		changes = 3000
		rate    = 1000
		history = 1024
	)
	vreg, vurl := ServeMetrics(t, "validator")
	v, _ := StartValidator(t, func(c *validator.Config) {
		c.Subscribe = false
		c.Registry.History = history
		c.Metrics = vreg
	})
	xs := newFeedExecs(t, v, execs, model)
	hbs := make([]*lp.VerifiedHeartbeat, changes)
	for i := range hbs {
		hbs[i] = xs[i%execs].heartbeat(t, model, uint64(i/execs+1), uint32(i/execs%7+1))
	}

	// The fast subscriber, through the client library.
	c := NewClient(t, v)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu      sync.Mutex
		synced  = make(chan struct{})
		start   uint64
		last    uint64
		gaps    []string
		applied int
		loads   = map[peer.ID]uint32{}
	)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- c.Watch(ctx, client.WatchOptions{}, func(_ int, ev *pb.WatchEvent) error {
			mu.Lock()
			defer mu.Unlock()
			switch ev.GetKind() {
			case pb.WatchEventKind_WATCH_EVENT_KIND_SNAPSHOT:
			case pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED:
				start, last = ev.GetVersion(), ev.GetVersion()
				close(synced)
			case pb.WatchEventKind_WATCH_EVENT_KIND_LOAD:
				if ev.GetVersion() != last+1 {
					gaps = append(gaps, fmt.Sprintf("%d after %d", ev.GetVersion(), last))
				}
				last = ev.GetVersion()
				applied++
				loads[peer.ID(ev.GetExecutor().GetPeerId())] = ev.GetExecutor().GetModels()[0].GetActive()
			default:
				return fmt.Errorf("unexpected %s event", lp.WatchKindName(ev.GetKind()))
			}
			return nil
		})
	}()
	select {
	case <-synced:
	case <-time.After(Timeout):
		t.Fatal("the subscriber never got its snapshot")
	}

	// The slow subscriber: a raw stream whose reader does not read until
	// the load is over.
	s, err := c.Host().NewStream(ctx, v.ID(), lp.WatchProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	if err := lp.WriteMessage(s, &pb.WatchRequest{}); err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	feedLoad(t, v, hbs, rate)
	took := time.Since(began)
	t.Logf("%d changes in %s (%.0f a second)", changes, took.Round(time.Millisecond), float64(changes)/took.Seconds())

	Eventually(t, "the fast subscriber has every change", func() error {
		mu.Lock()
		defer mu.Unlock()
		if applied < changes {
			return fmt.Errorf("%d of %d changes", applied, changes)
		}
		return nil
	})
	mu.Lock()
	if len(gaps) > 0 {
		t.Errorf("the fast subscriber missed changes: %v", gaps)
	}
	if last != start+changes {
		t.Errorf("last version %d, want %d", last, start+changes)
	}
	for i, x := range xs {
		want := hbs[changes-execs+i].Heartbeat().GetLoad().GetModels()[0].GetActive()
		if loads[x.id] != want {
			t.Errorf("executor %d: last load seen %d, want %d", i, loads[x.id], want)
		}
	}
	mu.Unlock()

	// The slow one now reads what it was sent: the start of the feed, then
	// an ERROR saying it fell behind, then the end of the stream.
	_ = s.SetReadDeadline(time.Now().Add(Timeout))
	r := bufio.NewReader(s)
	var n int
	var end *pb.WatchEvent
	for {
		var ev pb.WatchEvent
		if err := lp.ReadMessage(r, lp.MaxWatchEventSize, &ev); err != nil {
			if end == nil {
				t.Fatalf("the slow subscriber's stream ended after %d events without an ERROR: %v", n, err)
			}
			break
		}
		n++
		if ev.GetKind() == pb.WatchEventKind_WATCH_EVENT_KIND_ERROR {
			end = &ev
		}
	}
	if end.GetErrorCode() != pb.ErrorCode_ERROR_CODE_TIMEOUT || n > changes {
		t.Errorf("slow subscriber: %d events, then %v %q; want fewer than all and ERROR 4002", n, end.GetErrorCode(), end.GetErrorMessage())
	}
	if f := v.Feed(); f.CutBehind < 1 {
		t.Errorf("feed figures %+v: the slow subscriber should count as cut off for falling behind", f)
	}
	Eventually(t, "the feed's figures and metrics agree", func() error {
		_, err := FeedAgrees(t, v, vurl)
		return err
	})

	cancel()
	if err := <-watchDone; err != nil {
		t.Errorf("Watch after cancel: %v", err)
	}
}

// A subscriber that comes back resumes after its version when the
// history still holds it, and gets a fresh snapshot when it does not.
func TestWatchResumesOrStartsAgain(t *testing.T) {
	const model = "resume-model"
	v, _ := StartValidator(t, func(c *validator.Config) {
		c.Subscribe = false
		c.Registry.History = 64
	})
	xs := newFeedExecs(t, v, 2, model)
	c := NewClient(t, v)

	// watch collects the events of one subscription until want kinds came.
	watch := func(after uint64, until func([]*pb.WatchEvent) bool) []*pb.WatchEvent {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		var evs []*pb.WatchEvent
		stop := errors.New("enough")
		err := c.Watch(ctx, client.WatchOptions{AfterVersion: after, Model: model}, func(_ int, ev *pb.WatchEvent) error {
			evs = append(evs, ev)
			if until(evs) {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("watch after %d: %v (events %d)", after, err, len(evs))
		}
		return evs
	}
	synced := func(evs []*pb.WatchEvent) bool {
		return evs[len(evs)-1].GetKind() == pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED
	}
	first := watch(0, synced)
	if len(first) != 3 || first[0].GetKind() != pb.WatchEventKind_WATCH_EVENT_KIND_SNAPSHOT || !first[2].GetSnapshot() {
		t.Fatalf("first subscription: %v, want 2 SNAPSHOT and a SYNCED snapshot", kindsOf(first))
	}
	version := first[2].GetVersion()

	for i := range 10 {
		if _, err := v.Registry().ApplyHeartbeat(xs[0].heartbeat(t, model, uint64(i+1), uint32(i+1)), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	again := watch(version, func(evs []*pb.WatchEvent) bool { return len(evs) == 11 })
	if again[0].GetKind() != pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED || again[0].GetSnapshot() || again[0].GetVersion() != version {
		t.Fatalf("resumed subscription began with %v, want SYNCED (not a snapshot) at %d", kindsOf(again[:1]), version)
	}
	for i, ev := range again[1:] {
		if ev.GetVersion() != version+uint64(i)+1 || ev.GetKind() != pb.WatchEventKind_WATCH_EVENT_KIND_LOAD {
			t.Errorf("resumed event %d: %s at %d, want load at %d", i, lp.WatchKindName(ev.GetKind()), ev.GetVersion(), version+uint64(i)+1)
		}
	}

	for i := range 100 { // past the history of 64
		if _, err := v.Registry().ApplyHeartbeat(xs[1].heartbeat(t, model, uint64(i+1), uint32(i%5+1)), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	late := watch(version, synced)
	if k := kindsOf(late); len(late) != 3 || !late[2].GetSnapshot() {
		t.Fatalf("a subscriber too far behind: %v, want a fresh snapshot", k)
	}
	if late[2].GetVersion() != v.Registry().Version() {
		t.Errorf("fresh snapshot at %d, registry at %d", late[2].GetVersion(), v.Registry().Version())
	}

	// A request the validator refuses ends Watch with the contract's error.
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cfg := client.DefaultConfig()
	cfg.Network = "elsewhere"
	cfg.Validators = Bootstraps(t, v)
	other, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = other.Watch(ctx, client.WatchOptions{}, func(int, *pb.WatchEvent) error { return nil })
	if !errors.Is(err, lp.ErrWrongNetwork) {
		t.Errorf("watch from another network: %v, want 3004", err)
	}
}

func kindsOf(evs []*pb.WatchEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = lp.WatchKindName(ev.GetKind())
	}
	return out
}

// The feed's subscriber cap: past it, a subscriber gets ERROR 4290.
func TestWatchSubscriberCap(t *testing.T) {
	v, _ := StartValidator(t, func(c *validator.Config) { c.WatchSubscribers = 1 })
	c := NewClient(t, v)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := make(chan struct{})
	go func() {
		_ = c.Watch(ctx, client.WatchOptions{}, func(_ int, ev *pb.WatchEvent) error {
			if ev.GetKind() == pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED {
				close(in)
			}
			return nil
		})
	}()
	<-in
	s, err := c.Host().NewStream(ctx, v.ID(), lp.WatchProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	if err := lp.WriteMessage(s, &pb.WatchRequest{}); err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(Timeout))
	var ev pb.WatchEvent
	if err := lp.ReadMessage(bufio.NewReader(s), lp.MaxWatchEventSize, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.GetKind() != pb.WatchEventKind_WATCH_EVENT_KIND_ERROR || ev.GetErrorCode() != pb.ErrorCode_ERROR_CODE_RATE_LIMITED {
		t.Errorf("second subscriber past a cap of 1: %s %v, want ERROR 4290", lp.WatchKindName(ev.GetKind()), ev.GetErrorCode())
	}
	if f := v.Feed(); f.Subscribers != 1 {
		t.Errorf("feed figures %+v, want 1 subscriber", f)
	}
}
