package node

import (
	"fmt"
	"strconv"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// HostConfig configures a libp2p host.
type HostConfig struct {
	// Key is the node's identity.
	Key crypto.PrivKey
	// Listen addresses; none means the host only dials.
	Listen []ma.Multiaddr
	// UserAgent is announced over Identify.
	UserAgent string
	// Gater, if set, decides which connections are allowed (tests use it
	// to cut a link; operators could use it for allow or deny lists).
	Gater connmgr.ConnectionGater
	// InferenceStreams is how many inference streams one peer may hold
	// open to or from this host at once; 0 keeps go-libp2p's default.
	InferenceStreams int
	// Conns sizes the connections kept and admitted; the zero value is
	// DefaultConnections (executors, clients). Validators size it with
	// ValidatorConnections.
	Conns Connections
	// Reach selects the relay, AutoNAT and hole-punching parts (reach.go);
	// the zero value runs none of them.
	Reach Reach
	// Metrics, if set, receives go-libp2p's metrics (resource manager,
	// swarm, identify, relay, hole punching); nil turns them off rather
	// than filling Prometheus' global registry, which nothing serves.
	Metrics prometheus.Registerer
}

// NewHost builds a libp2p host with TCP and QUIC, Noise and Yamux, and
// listens on every configured address. Unlike libp2p.New, which carries on
// when some listen addresses fail, it fails with the first address that
// cannot be bound, so that a port in use is an error the user sees.
func NewHost(cfg HostConfig) (host.Host, error) {
	if cfg.Key == nil {
		return nil, fmt.Errorf("node: host needs a key")
	}
	rm, err := newResourceManager(cfg.Conns, cfg.InferenceStreams)
	if err != nil {
		return nil, err
	}
	cm, err := cfg.Conns.connManager()
	if err != nil {
		rm.Close()
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.Identity(cfg.Key),
		libp2p.NoListenAddrs,
		// Port reuse would let a leftover process silently share our port.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent(cfg.UserAgent),
	}
	opts = append(opts, cfg.Reach.options()...) // relay, AutoNAT, hole punching (reach.go)
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	if cfg.Metrics != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Metrics))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("node: create host: %w", err)
	}
	for _, a := range cfg.Listen {
		if err := h.Network().Listen(a); err != nil {
			h.Close()
			return nil, fmt.Errorf("listen on %s: %w (is the port in use?)", a, err)
		}
	}
	return h, nil
}

// PortListenAddrs returns the addresses for --port: TCP and QUIC on every
// IPv4 interface. Port 0 picks free ports.
func PortListenAddrs(port int) ([]ma.Multiaddr, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("port %d is not within 0-65535", port)
	}
	p := strconv.Itoa(port)
	return ParseMultiaddrs([]string{
		"/ip4/0.0.0.0/tcp/" + p,
		"/ip4/0.0.0.0/udp/" + p + "/quic-v1",
	})
}

// ParseMultiaddrs parses each string as a multiaddr, naming the bad one.
func ParseMultiaddrs(ss []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("address %q is not a multiaddr: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// FullAddrs returns the host's addresses with its /p2p/ id appended, as
// people and scripts use them to dial it.
func FullAddrs(h host.Host) []string {
	suffix := "/p2p/" + h.ID().String()
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String()+suffix)
	}
	return out
}
