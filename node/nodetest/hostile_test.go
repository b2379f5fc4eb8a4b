package nodetest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func counts(v *validator.Validator) (rejected, ignored uint64) {
	st := v.Stats()
	return st.GetMessagesRejected(), st.GetMessagesIgnored()
}

// Each bad message is published by a real peer on the topic; the validator
// must count it under the right verdict and leave the registry alone.
func TestHostileMessagesChangeNothing(t *testing.T) {
	scores := &scoreBook{}
	v, _ := StartValidator(t, func(c *validator.Config) {
		c.GossipOptions = append(c.GossipOptions, pubsub.WithPeerScoreInspect(scores.set, 50*time.Millisecond))
	})
	attacker := NewPeer(t, v)
	victim := NewPeer(t, v) // an honest executor the attacker impersonates
	now := time.Now()

	// An honest announcement from the attacker's own key, to replay later;
	// it does not answer liveness checks, so it stays unverified.
	_, good := attacker.SealAnnouncement(t, attacker.Announcement(100, now, Model("good", 1)))
	attacker.Publish(t, good)
	Eventually(t, "honest announcement registered", Held(v, attacker.ID(), "good"))

	forgedEnv, _ := attacker.SealAnnouncement(t, attacker.Announcement(101, now, Model("forged", 1)))
	forgedEnv[len(forgedEnv)-1] ^= 0xff // last byte of the signature

	// Signed by the attacker for the victim's executor_id.
	rec := &lp.AnnouncementRecord{}
	proto.Merge(&rec.Announcement, victim.Announcement(1, now, Model("stolen", 1)))
	stolen, err := record.Seal(rec, attacker.Key)
	if err != nil {
		t.Fatal(err)
	}
	stolenEnv, err := stolen.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	v2 := attacker.Announcement(102, now, Model("future-version", 1))
	v2.ProtocolVersion = 2
	many := attacker.Announcement(103, now)
	for i := range lp.MaxModels + 1 {
		many.Models = append(many.Models, Model(fmt.Sprintf("m%d", i), 1))
	}
	manyEnv, err := lp.SealAnnouncement(many, attacker.Key) // sealing does not check limits
	if err != nil {
		t.Fatal(err)
	}

	ignores := [][]byte{
		mustSeal(t, attacker, attacker.Announcement(50, now, Model("replayed-older", 1))),
		mustSeal(t, attacker, attacker.Announcement(104, now.Add(10*time.Minute), Model("from-the-future", 1))),
		mustSeal(t, attacker, attacker.Announcement(105, now.Add(-time.Hour), Model("too-old", 1))),
	}
	for _, m := range ignores {
		attacker.Publish(t, m)
	}
	Eventually(t, "replays and stale messages ignored", func() error {
		if _, i := counts(v); i != uint64(len(ignores)) {
			return fmt.Errorf("%d ignored, want %d", i, len(ignores))
		}
		return nil
	})

	rejects := [][]byte{
		wrap(t, forgedEnv),
		wrap(t, stolenEnv),
		mustSeal(t, attacker, v2),
		wrap(t, manyEnv),
		[]byte("not a protobuf at all \xff\xff\xff"),
		wrap(t, bytes.Repeat([]byte{1}, 100)), // announcement envelope of garbage
	}
	for _, m := range rejects {
		attacker.Publish(t, m)
	}
	Eventually(t, "every bad message rejected", func() error {
		if r, _ := counts(v); r != uint64(len(rejects)) {
			return fmt.Errorf("%d rejected, want %d", r, len(rejects))
		}
		return nil
	})

	Eventually(t, "the attacker's score below the gossip threshold", func() error {
		sc, ok := scores.get(attacker.ID())
		if !ok || sc >= -500 {
			return fmt.Errorf("attacker score %v (known %v), want below -500", sc, ok)
		}
		return nil
	})
	if sc, _ := scores.get(victim.ID()); sc < 0 {
		t.Errorf("a peer that sent nothing has score %v, want >= 0", sc)
	}

	if err := Held(v, attacker.ID(), "good")(); err != nil {
		t.Fatalf("registry changed by bad messages: %v", err)
	}
	if err := Absent(v, victim.ID())(); err != nil {
		t.Fatalf("impersonation registered: %v", err)
	}
	if n := v.Registry().Len(); n != 1 {
		t.Fatalf("registry holds %d executors, want 1", n)
	}

	// A message over the 64 KiB limit fits in an RPC (68 KiB) and reaches
	// the topic validator, which rejects it (3002); the validator goes on
	// serving others. (From a fresh peer: the attacker is graylisted by
	// now, and its messages are dropped before validation.)
	rejectedBefore, _ := counts(v)
	NewPeer(t, v).Publish(t, wrap(t, bytes.Repeat([]byte{7}, lp.MaxGossipMessageSize+1024)))
	honest := NewPeer(t, v)
	env, msg := honest.SealAnnouncement(t, honest.Announcement(1, time.Now(), Model("after-oversized", 1)))
	honest.ServePull(env)
	honest.Publish(t, msg)
	Eventually(t, "honest announcement after the oversized message", Registered(v, honest.ID(), "after-oversized"))
	Eventually(t, "the oversized message rejected", func() error {
		if r, _ := counts(v); r != rejectedBefore+1 {
			return fmt.Errorf("%d rejected, want %d", r, rejectedBefore+1)
		}
		return nil
	})
	if err := Held(v, attacker.ID(), "good")(); err != nil {
		t.Fatalf("registry changed by the oversized message: %v", err)
	}
}

// scoreBook keeps the validator's latest view of peer scores.
type scoreBook struct {
	mu     sync.Mutex
	scores map[peer.ID]float64
}

func (b *scoreBook) set(m map[peer.ID]float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.scores = m
}

func (b *scoreBook) get(p peer.ID) (float64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sc, ok := b.scores[p]
	return sc, ok
}

func wrap(t testing.TB, env []byte) []byte {
	t.Helper()
	m, err := node.EncodeAnnouncement(env)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustSeal(t *testing.T, p *Peer, a *pb.Announcement) []byte {
	t.Helper()
	_, m := p.SealAnnouncement(t, a)
	return m
}

// query sends raw request bytes and decodes the answer.
func query(t *testing.T, p *Peer, v *validator.Validator, req []byte) *pb.QueryResponse {
	t.Helper()
	resp, err := queryRaw(p, v, req)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return resp
}

func queryRaw(p *Peer, v *validator.Validator, req []byte) (*pb.QueryResponse, error) {
	b, err := node.Call(context.Background(), p.Host, v.ID(), lp.QueryProtocol, req, lp.MaxResponseSize, 5*time.Second)
	if err != nil {
		return nil, err
	}
	var resp pb.QueryResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func marshal(t testing.TB, q *pb.QueryRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestQueryErrorCodes(t *testing.T) {
	v, _ := StartValidator(t, nil)
	p := NewPeer(t, v)
	stranger := NewPeer(t)
	for _, tc := range []struct {
		name string
		req  []byte
		want pb.ErrorCode
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, pb.ErrorCode_ERROR_CODE_MALFORMED_MESSAGE},
		{"no query", marshal(t, &pb.QueryRequest{QueryId: 1}), pb.ErrorCode_ERROR_CODE_UNSUPPORTED_QUERY},
		{"limit over 1000", marshal(t, &pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}, Limit: 1001}), pb.ErrorCode_ERROR_CODE_MALFORMED_MESSAGE},
		{"bad model id", marshal(t, &pb.QueryRequest{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: "no spaces"}}}), pb.ErrorCode_ERROR_CODE_MALFORMED_MESSAGE},
		{"unknown executor", marshal(t, &pb.QueryRequest{Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: [][]byte{[]byte(stranger.ID())}}}}), pb.ErrorCode_ERROR_CODE_EXECUTOR_NOT_FOUND},
		{"unknown model", marshal(t, &pb.QueryRequest{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: "nobody-serves-this"}}}), pb.ErrorCode_ERROR_CODE_UNSPECIFIED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := query(t, p, v, tc.req)
			if resp.GetErrorCode() != tc.want {
				t.Fatalf("code %v (%q), want %v", resp.GetErrorCode(), resp.GetErrorMessage(), tc.want)
			}
		})
	}
}

// Framing abuse: a length prefix over the limit and a frame cut short both
// get an answer with 3002, not a hang or a dropped stream.
func TestQueryFramingAbuse(t *testing.T) {
	v, _ := StartValidator(t, nil)
	p := NewPeer(t, v)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"length over the limit", binary.AppendUvarint(nil, lp.MaxRequestSize+1)},
		{"half a frame", append(binary.AppendUvarint(nil, 100), 1, 2, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := p.Host.NewStream(ctx, v.ID(), lp.QueryProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := s.Write(tc.raw); err != nil {
				t.Fatal(err)
			}
			s.CloseWrite()
			var resp pb.QueryResponse
			if err := lp.ReadMessage(s, lp.MaxResponseSize, &resp); err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.GetErrorCode() != pb.ErrorCode_ERROR_CODE_MALFORMED_MESSAGE {
				t.Fatalf("code %v (%q), want 3002", resp.GetErrorCode(), resp.GetErrorMessage())
			}
		})
	}
}

func TestQueryRateLimit(t *testing.T) {
	v, _ := StartValidator(t, func(c *validator.Config) { c.QueryRate = 1 }) // burst 2
	p := NewPeer(t, v)
	other := NewPeer(t, v)
	req := marshal(t, &pb.QueryRequest{Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}})
	limited := 0
	for range 5 {
		if query(t, p, v, req).GetErrorCode() == pb.ErrorCode_ERROR_CODE_RATE_LIMITED {
			limited++
		}
	}
	if limited < 2 {
		t.Fatalf("%d of 5 rapid queries rate limited, want at least 2 past the burst of 2", limited)
	}
	if code := query(t, other, v, req).GetErrorCode(); code != pb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("another peer's first query got %v; the limit is per peer", code)
	}
}

// A peer that opens query streams and writes half a frame holds at most
// eight of them (the resource manager's per-peer limit for the query
// protocol); the ninth is refused, and the deadline frees the eight with a
// timeout answer. (A stream that never writes at all does not get past
// protocol negotiation, whose own timeout frees it.)
func TestQueryStreamAbuse(t *testing.T) {
	v, _ := StartValidator(t, func(c *validator.Config) { c.QueryTimeout = 2 * time.Second })
	p := NewPeer(t, v)
	ctx := context.Background()
	var held []lpnet.Stream
	for range 8 {
		s, err := p.Host.NewStream(ctx, v.ID(), lp.QueryProtocol)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(binary.AppendUvarint(nil, 10)); err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	// The ninth: opening is optimistic, the refusal shows on read.
	s, err := p.Host.NewStream(ctx, v.ID(), lp.QueryProtocol)
	if err == nil {
		s.SetDeadline(time.Now().Add(10 * time.Second))
		lp.WriteFrame(s, marshal(t, &pb.QueryRequest{Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}}))
		s.CloseWrite()
		var resp pb.QueryResponse
		err = lp.ReadMessage(s, lp.MaxResponseSize, &resp)
		s.Close()
	}
	if err == nil {
		t.Fatal("a ninth concurrent query stream from one peer was served; want it refused")
	}
	// The silent streams get an answer (4002) when their deadline passes.
	for _, s := range held {
		s.SetDeadline(time.Now().Add(10 * time.Second))
		var resp pb.QueryResponse
		if err := lp.ReadMessage(s, lp.MaxResponseSize, &resp); err != nil {
			t.Fatalf("silent stream: %v, want a timeout answer", err)
		}
		if resp.GetErrorCode() != pb.ErrorCode_ERROR_CODE_TIMEOUT {
			t.Fatalf("silent stream answered %v, want 4002", resp.GetErrorCode())
		}
		s.Close()
	}
	req := marshal(t, &pb.QueryRequest{Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}})
	Eventually(t, "queries served again", func() error {
		resp := query(t, p, v, req)
		if resp.GetErrorCode() != pb.ErrorCode_ERROR_CODE_UNSPECIFIED {
			return fmt.Errorf("code %v", resp.GetErrorCode())
		}
		return nil
	})
}

// A client of another network is told so, not answered with this one's
// registry.
func TestQueryFromAnotherNetwork(t *testing.T) {
	v, _ := StartValidator(t, nil)
	p := NewPeer(t, v)
	resp := query(t, p, v, marshal(t, &pb.QueryRequest{Network: "other", Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}}))
	if resp.GetErrorCode() != pb.ErrorCode_ERROR_CODE_WRONG_NETWORK {
		t.Fatalf("code %v (%q), want 3004", resp.GetErrorCode(), resp.GetErrorMessage())
	}
	if resp.GetStatistics() != nil {
		t.Fatal("a wrong-network query got statistics")
	}
}
