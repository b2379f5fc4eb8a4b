package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestParseBootstrapPeers(t *testing.T) {
	const id = "12D3KooWSTJUWtHQYkbifWJcn9TD8vpQ6xytfbDZsPN2fj4iZHTC"
	for _, tc := range []struct {
		in       string
		addrs    []string
		ids      []string
		hostPort []string
		err      string
	}{
		{in: "/ip4/127.0.0.1/tcp/8080/p2p/" + id, addrs: []string{"/ip4/127.0.0.1/tcp/8080"}, ids: []string{id}, hostPort: []string{""}},
		{in: "/ip4/127.0.0.1/udp/8080/quic-v1/p2p/" + id, addrs: []string{"/ip4/127.0.0.1/udp/8080/quic-v1"}, ids: []string{id}, hostPort: []string{""}},
		{in: "127.0.0.1:8080", addrs: []string{"/ip4/127.0.0.1/tcp/8080"}, ids: []string{""}, hostPort: []string{"127.0.0.1:8080"}},
		{in: "[::1]:9090", addrs: []string{"/ip6/::1/tcp/9090"}, ids: []string{""}, hostPort: []string{"[::1]:9090"}},
		{in: "localhost:8080", addrs: []string{"/dns/localhost/tcp/8080"}, ids: []string{""}, hostPort: []string{"localhost:8080"}},
		{in: " 127.0.0.1:1, /ip4/10.0.0.1/tcp/2/p2p/" + id + " ,", addrs: []string{"/ip4/127.0.0.1/tcp/1", "/ip4/10.0.0.1/tcp/2"}, ids: []string{"", id}, hostPort: []string{"127.0.0.1:1", ""}},
		{in: "", addrs: nil},
		{in: "not-an-address", err: "want host:port"},
		{in: "127.0.0.1:0", err: "not within 1-65535"},
		{in: "127.0.0.1:http", err: "not within 1-65535"},
		{in: ":8080", err: "has no host"},
		{in: "/ip4/127.0.0.1/tcp/8080", err: "/p2p/<peer id>"},
		{in: "/ip4/nope", err: "not a multiaddr"},
	} {
		got, err := ParseBootstrapPeers(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.addrs) {
			t.Errorf("%q: %d peers, want %d", tc.in, len(got), len(tc.addrs))
			continue
		}
		for i, p := range got {
			if p.Addr.String() != tc.addrs[i] || p.ID.String() != tc.ids[i] && !(tc.ids[i] == "" && p.ID == "") || p.HostPort != tc.hostPort[i] {
				t.Errorf("%q[%d]: addr %s id %q hostport %q; want %s %q %q", tc.in, i, p.Addr, p.ID, p.HostPort, tc.addrs[i], tc.ids[i], tc.hostPort[i])
			}
		}
	}
}

// The short host:port form learns a live node's peer id from the Noise
// handshake.
func TestProbePeerID(t *testing.T) {
	key, err := LoadOrCreateIdentity(t.TempDir() + "/k")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(HostConfig{Key: key, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	port, err := h.Addrs()[0].ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	probeKey, err := CreateIdentity(t.TempDir() + "/p")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ProbePeerID(ctx, probeKey, "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := peer.IDFromPrivateKey(key)
	if got != want {
		t.Fatalf("probe learned %s, want %s", got, want)
	}
}
