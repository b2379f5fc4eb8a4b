package feed

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/protocol/pb"
)

func TestEventJSON(t *testing.T) {
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPublicKey(pub)
	relay := ma.StringCast("/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWGRo7M9KdEA2D1dxM7NqH332gDdvgCHZ29vCWFXJiNcBW/p2p-circuit")
	direct := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	x := &pb.WatchedExecutor{
		PeerId: []byte(id), Status: pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED, Verified: true,
		AnnouncementSeq: 1 << 60, Addrs: [][]byte{relay.Bytes()},
		Models: []*pb.WatchedModel{{ModelId: "m", Status: pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED, Active: 2, Capacity: 2, OutputTokenPriceWei: "5"}},
	}
	ev := EventOf(&pb.WatchEvent{Version: 1<<62 + 1, Kind: pb.WatchEventKind_WATCH_EVENT_KIND_LOAD, Executor: x})
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`"version":"4611686018427387905"`, `"kind":"load"`, `"peer_id":"` + id.String() + `"`, `"status":"overloaded"`,
		`"relayed":true`, `"announcement_seq":"1152921504606846976"`, `"input_token_price_wei":"0"`, `"output_token_price_wei":"5"`,
		`"features":[]`, `"active":2`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
	x.Addrs = append(x.Addrs, direct.Bytes())
	if ExecutorOf(x).Relayed {
		t.Error("an executor with a direct address is not relayed")
	}
	errEv := EventOf(&pb.WatchEvent{Kind: pb.WatchEventKind_WATCH_EVENT_KIND_ERROR, ErrorCode: pb.ErrorCode_ERROR_CODE_TIMEOUT, ErrorMessage: "too slow"})
	if errEv.Error == nil || errEv.Error.Code != 4002 || errEv.Executor != nil {
		t.Errorf("error event: %+v", errEv)
	}
}
