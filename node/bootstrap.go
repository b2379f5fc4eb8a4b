package node

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"
	mss "github.com/multiformats/go-multistream"
)

// BootstrapPeer is one entry of --validator / VALIDATOR_ADDRESS.
type BootstrapPeer struct {
	// Raw is the text the user gave, for logs.
	Raw string
	// Addr is the transport address, without /p2p/.
	Addr ma.Multiaddr
	// ID is the peer id given in the address; empty for the short
	// host:port form, whose id is learned on first contact.
	ID peer.ID
	// HostPort is set for the short form: what to dial to learn the id.
	HostPort string
}

// ParseBootstrapPeers parses a comma-separated list of bootstrap addresses.
// Each is a multiaddr ending in /p2p/<peer id> (the canonical form) or the
// short host:port form (TCP), whose peer id is learned during the first
// handshake (trust on first use).
func ParseBootstrapPeers(list string) ([]BootstrapPeer, error) {
	var out []BootstrapPeer
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		bp, err := parseBootstrapPeer(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, bp)
	}
	return out, nil
}

func parseBootstrapPeer(raw string) (BootstrapPeer, error) {
	if strings.HasPrefix(raw, "/") {
		a, err := ma.NewMultiaddr(raw)
		if err != nil {
			return BootstrapPeer{}, fmt.Errorf("validator address %q is not a multiaddr: %w", raw, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return BootstrapPeer{}, fmt.Errorf("validator address %q: want a multiaddr ending in /p2p/<peer id>, or host:port", raw)
		}
		if len(info.Addrs) != 1 {
			return BootstrapPeer{}, fmt.Errorf("validator address %q has no transport part", raw)
		}
		return BootstrapPeer{Raw: raw, Addr: info.Addrs[0], ID: info.ID}, nil
	}
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		return BootstrapPeer{}, fmt.Errorf("validator address %q: want host:port or a multiaddr with /p2p/: %v", raw, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return BootstrapPeer{}, fmt.Errorf("validator address %q: port %q is not within 1-65535", raw, port)
	}
	if host == "" {
		return BootstrapPeer{}, fmt.Errorf("validator address %q has no host", raw)
	}
	var proto string
	switch ip := net.ParseIP(host); {
	case ip == nil:
		proto = "dns"
	case ip.To4() != nil:
		proto = "ip4"
	default:
		proto = "ip6"
	}
	a, err := ma.NewMultiaddr(fmt.Sprintf("/%s/%s/tcp/%d", proto, host, n))
	if err != nil {
		return BootstrapPeer{}, fmt.Errorf("validator address %q: %w", raw, err)
	}
	return BootstrapPeer{Raw: raw, Addr: a, HostPort: net.JoinHostPort(host, port)}, nil
}

// ProbePeerID learns the peer id of the libp2p node listening on TCP
// host:port by running the Noise handshake without an expected id and
// closing the connection. The answer is only as trustworthy as the network
// path: it is trust on first use.
func ProbePeerID(ctx context.Context, key crypto.PrivKey, hostPort string) (peer.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := mss.SelectProtoOrFail(noise.ID, conn); err != nil {
		return "", fmt.Errorf("%s does not speak libp2p noise: %w", hostPort, err)
	}
	tpt, err := noise.New(noise.ID, key, nil)
	if err != nil {
		return "", err
	}
	st, err := tpt.WithSessionOptions(noise.DisablePeerIDCheck())
	if err != nil {
		return "", err
	}
	sc, err := st.SecureOutbound(ctx, conn, "")
	if err != nil {
		return "", fmt.Errorf("handshake with %s: %w", hostPort, err)
	}
	defer sc.Close()
	return sc.RemotePeer(), nil
}
