package node

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	lp "github.com/lloom/lloom/protocol"
)

// ReachRole selects which of go-libp2p's reachability parts a host runs
// (DESIGN §11). The zero value, ReachOff, runs none: no relay transport,
// no AutoNAT service, no hole punching (tests, tools, examples).
type ReachRole int

const (
	// ReachOff disables relaying altogether, as before reachability existed.
	ReachOff ReachRole = iota
	// ReachValidator: public by configuration, offers circuit relay v2
	// (when RelayService) and AutoNAT v1 and v2 to others.
	ReachValidator
	// ReachExecutor: learns its reachability (AutoNAT v2), reserves relay
	// slots while it has no confirmed public address, hole punches.
	ReachExecutor
	// ReachClient: dials relayed addresses and hole punches (clients and
	// the gateway).
	ReachClient
)

// RelayLimits bound what a validator's relay service carries. A circuit
// that reaches Data bytes in either direction, or lives Duration, is reset
// by the relay: an inference answer still streaming over it is cut, which
// the client reports as a failure after the first chunk. Clients upgrade
// to a direct connection (hole punching) first, so the relay mostly
// carries signalling; the limits size what it carries when punching fails.
type RelayLimits struct {
	// MaxReservations is how many executors may hold a slot at once.
	MaxReservations int
	// MaxCircuits is how many relayed connections one peer may have open.
	MaxCircuits int
	// MaxReservationsPerIP bounds the slots behind one IP address (one NAT).
	MaxReservationsPerIP int
	// Data is the byte limit of one relayed connection, per direction.
	Data int64
	// Duration is the lifetime limit of one relayed connection.
	Duration time.Duration
	// ReservationTTL is how long a reservation lasts before it is renewed.
	ReservationTTL time.Duration
}

// DefaultRelayLimits carry the hole-punch signalling and a few small
// answers per connection (go-libp2p's own defaults, 128 KiB and 2 minutes,
// cut an answer of about 30,000 tokens' worth of frames sooner).
func DefaultRelayLimits() RelayLimits {
	return RelayLimits{
		MaxReservations:      1024,
		MaxCircuits:          64,
		MaxReservationsPerIP: 16,
		Data:                 4 << 20,
		Duration:             10 * time.Minute,
		ReservationTTL:       time.Hour,
	}
}

// Validate reports the first limit that cannot work.
func (l RelayLimits) Validate() error {
	switch {
	case l.MaxReservations < 1:
		return fmt.Errorf("relay max reservations %d must be at least 1", l.MaxReservations)
	case l.MaxCircuits < 1:
		return fmt.Errorf("relay max circuits %d must be at least 1", l.MaxCircuits)
	case l.MaxReservationsPerIP < 1:
		return fmt.Errorf("relay max reservations per IP %d must be at least 1", l.MaxReservationsPerIP)
	case l.Data < 16<<10:
		return fmt.Errorf("relay data limit %d bytes is below 16 KiB: not even a hole punch fits", l.Data)
	case l.Duration < 10*time.Second:
		return fmt.Errorf("relay duration limit %s is below 10s", l.Duration)
	case l.ReservationTTL < time.Minute:
		return fmt.Errorf("relay reservation TTL %s is below 1m", l.ReservationTTL)
	}
	return nil
}

func (l RelayLimits) resources() relayv2.Resources {
	r := relayv2.DefaultResources()
	r.Limit = &relayv2.RelayLimit{Duration: l.Duration, Data: l.Data}
	r.ReservationTTL = l.ReservationTTL
	r.MaxReservations = l.MaxReservations
	r.MaxCircuits = l.MaxCircuits
	r.MaxReservationsPerIP = l.MaxReservationsPerIP
	r.MaxReservationsPerASN = max(r.MaxReservationsPerASN, l.MaxReservationsPerIP)
	return r
}

// PeerSource yields relay candidates (the validators a node knows, those
// found later included) to autorelay; see ValidatorPeerSource.
type PeerSource func(ctx context.Context, num int) <-chan peer.AddrInfo

// Reach is a host's reachability setup.
type Reach struct {
	Role ReachRole
	// RelayService turns a validator's circuit relay v2 service on.
	RelayService bool
	// RelayLimits bound it (zero: DefaultRelayLimits).
	RelayLimits RelayLimits
	// PublicAddrs, if set, are the only addresses the host announces
	// (an operator who forwards a port); the host then counts as public.
	PublicAddrs []ma.Multiaddr
	// Relays are an executor's relay candidates.
	Relays PeerSource
	// RelayStats, if set, counts what the relay service carries.
	RelayStats *RelayStats
}

// RelayStats counts a relay service's reservations, circuits and bytes
// (the validator's statistics); it is the relay's metrics tracer and
// passes every event on to go-libp2p's Prometheus tracer when metrics
// are on (libp2p_relaysvc_*).
type RelayStats struct {
	next relayv2.MetricsTracer

	reservations, circuits               atomic.Int64 // now
	reservationsTotal, circuitsTotal     atomic.Uint64
	reservationsRefused, circuitsRefused atomic.Uint64
	bytes                                atomic.Uint64
}

// NewRelayStats returns counters that also feed reg, if not nil.
func NewRelayStats(reg prometheus.Registerer) *RelayStats {
	s := &RelayStats{}
	if reg != nil {
		s.next = relayv2.NewMetricsTracer(relayv2.WithRegisterer(reg))
	}
	return s
}

// RelayFigures is a snapshot of RelayStats.
type RelayFigures struct {
	Reservations, Circuits               int64 // held or open now
	ReservationsTotal, CircuitsTotal     uint64
	ReservationsRefused, CircuitsRefused uint64
	// Bytes relayed, both directions, all circuits.
	Bytes uint64
}

// Figures returns the counters (zero for a nil RelayStats).
func (s *RelayStats) Figures() RelayFigures {
	if s == nil {
		return RelayFigures{}
	}
	return RelayFigures{
		Reservations: s.reservations.Load(), Circuits: s.circuits.Load(),
		ReservationsTotal: s.reservationsTotal.Load(), CircuitsTotal: s.circuitsTotal.Load(),
		ReservationsRefused: s.reservationsRefused.Load(), CircuitsRefused: s.circuitsRefused.Load(),
		Bytes: s.bytes.Load(),
	}
}

var _ relayv2.MetricsTracer = (*RelayStats)(nil)

func (s *RelayStats) RelayStatus(enabled bool) {
	if s.next != nil {
		s.next.RelayStatus(enabled)
	}
}

func (s *RelayStats) ConnectionOpened() {
	s.circuits.Add(1)
	s.circuitsTotal.Add(1)
	if s.next != nil {
		s.next.ConnectionOpened()
	}
}

func (s *RelayStats) ConnectionClosed(d time.Duration) {
	s.circuits.Add(-1)
	if s.next != nil {
		s.next.ConnectionClosed(d)
	}
}

func (s *RelayStats) ConnectionRequestHandled(st pbv2.Status) {
	if st != pbv2.Status_OK {
		s.circuitsRefused.Add(1)
	}
	if s.next != nil {
		s.next.ConnectionRequestHandled(st)
	}
}

func (s *RelayStats) ReservationAllowed(isRenewal bool) {
	if !isRenewal {
		s.reservations.Add(1)
		s.reservationsTotal.Add(1)
	}
	if s.next != nil {
		s.next.ReservationAllowed(isRenewal)
	}
}

func (s *RelayStats) ReservationClosed(cnt int) {
	s.reservations.Add(-int64(cnt))
	if s.next != nil {
		s.next.ReservationClosed(cnt)
	}
}

func (s *RelayStats) ReservationRequestHandled(st pbv2.Status) {
	if st != pbv2.Status_OK {
		s.reservationsRefused.Add(1)
	}
	if s.next != nil {
		s.next.ReservationRequestHandled(st)
	}
}

func (s *RelayStats) BytesTransferred(n int) {
	s.bytes.Add(uint64(n))
	if s.next != nil {
		s.next.BytesTransferred(n)
	}
}

// options returns the go-libp2p options r describes. Never NATPortMap
// (UPnP and NAT-PMP multicast on the local network).
func (r Reach) options() []libp2p.Option {
	var opts []libp2p.Option
	if len(r.PublicAddrs) > 0 {
		pub := append([]ma.Multiaddr(nil), r.PublicAddrs...)
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return pub }))
	}
	switch r.Role {
	case ReachOff:
		return append(opts, libp2p.DisableRelay())
	case ReachValidator:
		// The relay service and the DHT follow AutoNAT v1's event only,
		// whose first probe comes 15 s after start: a validator is public
		// by configuration. It answers others' AutoNAT probes, v1 and v2.
		opts = append(opts, libp2p.EnableRelay(), libp2p.ForceReachabilityPublic(), libp2p.EnableNATService(), libp2p.EnableAutoNATv2())
		if r.RelayService {
			l := r.RelayLimits
			if l == (RelayLimits{}) {
				l = DefaultRelayLimits()
			}
			ropts := []relayv2.Option{relayv2.WithResources(l.resources())}
			if r.RelayStats != nil {
				ropts = append(ropts, relayv2.WithMetricsTracer(r.RelayStats))
			}
			opts = append(opts, libp2p.EnableRelayService(ropts...))
		}
	case ReachExecutor:
		opts = append(opts, libp2p.EnableRelay(), libp2p.EnableHolePunching(), libp2p.EnableAutoNATv2())
		if len(r.PublicAddrs) > 0 {
			opts = append(opts, libp2p.ForceReachabilityPublic())
		} else if r.Relays != nil {
			// Autorelay treats unknown reachability as private: it reserves
			// at once, on every validator it is given (new ones included),
			// and stops only when AutoNAT confirms a public address.
			opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(autorelay.PeerSource(r.Relays),
				autorelay.WithMinCandidates(1), autorelay.WithBootDelay(0),
				autorelay.WithMaxCandidates(16), autorelay.WithBackoff(30*time.Second),
				autorelay.WithMinInterval(5*time.Second)))
		}
	case ReachClient:
		opts = append(opts, libp2p.EnableRelay(), libp2p.EnableHolePunching())
	}
	return opts
}

// RelaySource offers autorelay the validators a node knows: the ones it
// is connected to or has addresses for that answer queries, those found
// later through the DHT included. Bind it to the host once built.
type RelaySource struct {
	h atomic.Pointer[host.Host]
}

// Bind sets the host whose peerstore the source reads.
func (r *RelaySource) Bind(h host.Host) { r.h.Store(&h) }

// Source is the PeerSource: up to num validators, connected ones first.
func (r *RelaySource) Source(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	defer close(out)
	hp := r.h.Load()
	if hp == nil {
		return out
	}
	h := *hp
	for _, p := range h.Peerstore().PeersWithAddrs() {
		if len(out) == num || p == h.ID() {
			continue
		}
		if ok, _ := h.Peerstore().SupportsProtocols(p, lp.QueryProtocol); len(ok) == 0 {
			continue
		}
		out <- peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)}
	}
	return out
}
