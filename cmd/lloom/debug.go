package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
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
			if err := publishInvalid(ctx, a.network, peers[0], kind); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "published a %s message; a validator refuses it with code %d (%s)\n", kind, int32(code), code)
			return nil
		},
	}
	cmd.Flags().StringVar(&validators, "validator", "", "validator to publish through: multiaddr with /p2p/, or host:port (env VALIDATOR_ADDRESS)")
	cmd.Flags().StringVar(&kind, "kind", "", "what is wrong with the message: "+strings.Join(kinds, ", "))
	durationVar(cmd.Flags(), &timeout, "timeout", 10*time.Second, "time to reach the validator and publish")
	return cmd
}

func publishInvalid(ctx context.Context, network string, v node.BootstrapPeer, kind string) error {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return err
	}
	h, err := node.NewHost(node.HostConfig{Key: key, UserAgent: "lloom-debug"})
	if err != nil {
		return err
	}
	defer h.Close()
	g, err := node.JoinRaw(h, network)
	if err != nil {
		return err
	}
	defer g.Close()
	if v.ID == "" {
		if v.ID, err = node.ProbePeerID(ctx, key, v.HostPort); err != nil {
			return fmt.Errorf("validator %s: %w", v.Raw, err)
		}
	}
	h.Peerstore().AddAddr(v.ID, v.Addr, time.Hour)
	if err := h.Connect(ctx, peer.AddrInfo{ID: v.ID}); err != nil {
		return fmt.Errorf("validator %s: %w", v.Raw, err)
	}
	for !slices.Contains(g.Topic.ListPeers(), v.ID) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("validator %s did not join the topic of network %q", v.Raw, network)
		case <-time.After(50 * time.Millisecond):
		}
	}
	msgs, err := invalidMessages(kind, key)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if sent, err := g.PublishAndWait(ctx, m); err != nil || !sent {
			return fmt.Errorf("message not delivered to the validator: %v", err)
		}
	}
	return nil
}

// invalidMessages builds the gossip data for kind, signed with key.
func invalidMessages(kind string, key crypto.PrivKey) ([][]byte, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
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
		return [][]byte{[]byte("this is not a lloom gossip message")}, nil
	case "forged-signature":
		env, err := lp.SealAnnouncement(ann(seq, now, "debug-forged"), key)
		if err != nil {
			return nil, err
		}
		env[len(env)-1] ^= 0xff // the last byte of the signature
		m, err := node.EncodeAnnouncement(env)
		return [][]byte{m}, err
	case "wrong-signer":
		// Signed with our key, in the name of another executor.
		other, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		otherID, _ := peer.IDFromPrivateKey(other)
		r := &lp.AnnouncementRecord{}
		proto.Merge(&r.Announcement, ann(seq, now, "debug-impersonated"))
		r.ExecutorId = []byte(otherID)
		env, err := record.Seal(r, key)
		if err != nil {
			return nil, err
		}
		b, err := env.Marshal()
		if err != nil {
			return nil, err
		}
		m, err := node.EncodeAnnouncement(b)
		return [][]byte{m}, err
	case "replay":
		first, err := seal(ann(seq, now, "debug-replay"))
		if err != nil {
			return nil, err
		}
		older, err := seal(ann(seq-1, now, "debug-replay"))
		return [][]byte{first, older}, err
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
	return [][]byte{m}, err
}
