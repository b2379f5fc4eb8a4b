package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// invalidKinds are the bad messages `debug publish-invalid` can send, with
// the code a validator answers each with.
var invalidKinds = map[string]pb.ErrorCode{
	"forged-signature": pb.ErrorCode_ERROR_CODE_INVALID_SIGNATURE,
	"wrong-signer":     pb.ErrorCode_ERROR_CODE_INVALID_SIGNATURE,
	"future":           pb.ErrorCode_ERROR_CODE_EXPIRED,
	"replay":           pb.ErrorCode_ERROR_CODE_REPLAY,
	"bad-version":      pb.ErrorCode_ERROR_CODE_UNSUPPORTED_PROTOCOL_VERSION,
	"too-many-models":  pb.ErrorCode_ERROR_CODE_MODEL_LIMIT_EXCEEDED,
	"malformed":        pb.ErrorCode_ERROR_CODE_MALFORMED_MESSAGE,
}

func newDebugCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Tools for testing a network",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPublishInvalidCommand(a))
	return cmd
}

func newPublishInvalidCommand(a *app) *cobra.Command {
	var (
		validators string
		kind       string
		timeout    time.Duration
	)
	kinds := make([]string, 0, len(invalidKinds))
	for k := range invalidKinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	cmd := &cobra.Command{
		Use:   "publish-invalid --validator ADDR --kind KIND",
		Short: "Publish a message a validator must refuse, as a misbehaving peer would",
		Long: `Join the announcement topic as a fresh peer and publish one message that
validators must refuse, to check that they do (see "Rejected message" in
the validator's log and messages_rejected / messages_ignored in
'lloom client stats'). Kinds: ` + strings.Join(kinds, ", ") + `.

"replay" first publishes a valid announcement of a model named
debug-replay, then an older one; the valid one stays registered until it
turns stale and is removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			code, ok := invalidKinds[kind]
			if !ok {
				return usagef("--kind %q: want one of %s", kind, strings.Join(kinds, ", "))
			}
			peers, err := node.ParseBootstrapPeers(validators)
			if err != nil {
				return usagef("--validator: %v", err)
			}
			if len(peers) == 0 {
				return usagef("no validator address: set --validator or VALIDATOR_ADDRESS")
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			id, err := publishInvalid(ctx, a.network, peers[0], kind)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "published a %s message as executor %s; a validator refuses it with code %d (%s)\n", kind, id, int32(code), code)
			return nil
		},
	}
	cmd.Flags().StringVar(&validators, "validator", "", "validator to publish through: multiaddr with /p2p/, or host:port (env VALIDATOR_ADDRESS)")
	cmd.Flags().StringVar(&kind, "kind", "", "what is wrong with the message: "+strings.Join(kinds, ", "))
	durationVar(cmd.Flags(), &timeout, "timeout", 10*time.Second, "time to reach the validator and publish")
	return cmd
}

// publishInvalid publishes the messages of kind and returns the executor
// id they claim.
func publishInvalid(ctx context.Context, network string, v node.BootstrapPeer, kind string) (peer.ID, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return "", err
	}
	h, err := node.NewHost(node.HostConfig{Key: key, UserAgent: "lloom-debug"})
	if err != nil {
		return "", err
	}
	defer h.Close()
	g, err := node.JoinRaw(h, network)
	if err != nil {
		return "", err
	}
	defer g.Close()
	if v.ID == "" {
		if v.ID, err = node.ProbePeerID(ctx, key, v.HostPort); err != nil {
			return "", fmt.Errorf("validator %s: %w", v.Raw, err)
		}
	}
	h.Peerstore().AddAddr(v.ID, v.Addr, time.Hour)
	if err := h.Connect(ctx, peer.AddrInfo{ID: v.ID}); err != nil {
		return "", fmt.Errorf("validator %s: %w", v.Raw, err)
	}
	for !slices.Contains(g.Topic.ListPeers(), v.ID) {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("validator %s did not join the topic of network %q", v.Raw, network)
		case <-time.After(50 * time.Millisecond):
		}
	}
	msgs, claimed, err := invalidMessages(kind, key)
	if err != nil {
		return "", err
	}
	before, err := refusals(ctx, h, v.ID, network)
	if err != nil {
		return "", fmt.Errorf("validator %s: %w", v.Raw, err)
	}
	info := &pb.QueryRequest{Network: network, QueryId: 2,
		Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: [][]byte{[]byte(claimed)}}}}
	for i, m := range msgs {
		if sent, err := g.PublishAndWait(ctx, m); err != nil || !sent {
			return "", fmt.Errorf("message not delivered to the validator: %v", err)
		}
		if i < len(msgs)-1 {
			// Validation runs concurrently: let the validator register
			// this one before the next, or their order is not certain.
			if err := pollUntil(ctx, "the validator did not register the first message", func() bool {
				_, err := ask(ctx, h, v.ID, info)
				return err == nil
			}); err != nil {
				return "", err
			}
		}
	}
	// Stay until the validator has judged it: leaving at once could drop
	// the message in flight.
	err = pollUntil(ctx, "the validator did not report refusing the message", func() bool {
		n, err := refusals(ctx, h, v.ID, network)
		return err == nil && n > before
	})
	return claimed, err
}

// ask sends one query to a validator and decodes the answer.
func ask(ctx context.Context, h host.Host, validator peer.ID, q *pb.QueryRequest) (*pb.QueryResponse, error) {
	req, err := proto.Marshal(q)
	if err != nil {
		return nil, err
	}
	b, err := node.Call(ctx, h, validator, lp.QueryProtocol, req, lp.MaxResponseSize, 0)
	if err != nil {
		return nil, err
	}
	var resp pb.QueryResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	return &resp, lp.ErrorFromResponse(resp.GetErrorCode(), resp.GetErrorMessage())
}

// refusals is how many messages the validator has rejected or ignored.
func refusals(ctx context.Context, h host.Host, validator peer.ID, network string) (uint64, error) {
	resp, err := ask(ctx, h, validator, &pb.QueryRequest{Network: network, QueryId: 1,
		Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}})
	if err != nil {
		return 0, err
	}
	return resp.GetStatistics().GetMessagesRejected() + resp.GetStatistics().GetMessagesIgnored(), nil
}

// pollUntil calls cond every 50ms until it holds or ctx ends.
func pollUntil(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// invalidMessages builds the gossip data for kind, signed with key, and
// returns the executor id the messages claim.
func invalidMessages(kind string, key crypto.PrivKey) (msgs [][]byte, claimed peer.ID, err error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, "", err
	}
	now := time.Now()
	ann := func(seq uint64, issued time.Time, models ...string) *pb.Announcement {
		a := &pb.Announcement{ExecutorId: []byte(id), Seq: seq, Kind: pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL,
			IssuedAtMs: issued.UnixMilli(), ProtocolVersion: lp.Version}
		for _, m := range models {
			a.Models = append(a.Models, &pb.ModelDescriptor{ModelId: m, BackendType: "debug", Available: true, Capacity: 1})
		}
		return a
	}
	seal := func(a *pb.Announcement) ([]byte, error) {
		env, err := lp.SealAnnouncement(a, key)
		if err != nil {
			return nil, err
		}
		return node.EncodeAnnouncement(env)
	}
	seq := uint64(now.UnixNano())
	var a *pb.Announcement
	switch kind {
	case "malformed":
		return [][]byte{[]byte("this is not a lloom gossip message")}, id, nil
	case "forged-signature":
		env, err := lp.SealAnnouncement(ann(seq, now, "debug-forged"), key)
		if err != nil {
			return nil, "", err
		}
		env[len(env)-1] ^= 0xff // the last byte of the signature
		m, err := node.EncodeAnnouncement(env)
		return [][]byte{m}, id, err
	case "wrong-signer":
		// Signed with our key, in the name of another executor.
		other, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, "", err
		}
		otherID, _ := peer.IDFromPrivateKey(other)
		r := &lp.AnnouncementRecord{}
		proto.Merge(&r.Announcement, ann(seq, now, "debug-impersonated"))
		r.ExecutorId = []byte(otherID)
		env, err := record.Seal(r, key)
		if err != nil {
			return nil, "", err
		}
		b, err := env.Marshal()
		if err != nil {
			return nil, "", err
		}
		m, err := node.EncodeAnnouncement(b)
		return [][]byte{m}, otherID, err
	case "replay":
		first, err := seal(ann(seq, now, "debug-replay"))
		if err != nil {
			return nil, "", err
		}
		older, err := seal(ann(seq-1, now, "debug-replay"))
		return [][]byte{first, older}, id, err
	case "future":
		a = ann(seq, now.Add(10*time.Minute), "debug-future")
	case "bad-version":
		a = ann(seq, now, "debug-version")
		a.ProtocolVersion = lp.Version + 1
	case "too-many-models":
		a = ann(seq, now)
		for i := range lp.MaxModels + 1 {
			a.Models = append(a.Models, &pb.ModelDescriptor{ModelId: fmt.Sprintf("debug-%d", i), Available: true, Capacity: 1})
		}
	}
	m, err := seal(a)
	return [][]byte{m}, id, err
}
