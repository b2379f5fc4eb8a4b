package validator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	lp "github.com/lloom/lloom/protocol"
)

var errNoAddrs = errors.New("not connected, and no address to dial")

// fetch opens a pull stream to the executor itself — over the connection
// the validator has with it, else by dialing its announced addresses — and
// returns the envelope it answers with and the remote IP of the stream's
// connection. The stream's remote peer is the executor: Noise
// authenticated its key when the connection was made.
func (p *puller) fetch(j pullJob) (env []byte, observed netip.Addr, err error) {
	h := p.v.h
	if h.Network().Connectedness(j.executor) != network.Connected {
		var addrs []ma.Multiaddr
		for _, b := range j.addrs {
			if a, err := ma.NewMultiaddrBytes(b); err == nil {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 && len(h.Peerstore().Addrs(j.executor)) == 0 {
			return nil, observed, errNoAddrs
		}
		h.Peerstore().AddAddrs(j.executor, addrs, peerstore.TempAddrTTL)
		select {
		case p.dials <- struct{}{}:
			defer func() { <-p.dials }()
		case <-p.ctx.Done():
			return nil, observed, p.ctx.Err()
		}
		defer func() {
			if err != nil && h.Network().Connectedness(j.executor) != network.Connected {
				// Forget what a stranger made us learn.
				h.Peerstore().ClearAddrs(j.executor)
				h.Peerstore().RemovePeer(j.executor)
			}
		}()
	}
	// A dial slot first, then a stream slot: jobs waiting to dial must not
	// hold the slots of checks over existing connections.
	select {
	case p.streams <- struct{}{}:
		defer func() { <-p.streams }()
	case <-p.ctx.Done():
		return nil, observed, p.ctx.Err()
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.v.cfg.PullTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, j.executor, lp.AnnouncementProtocol)
	if err != nil {
		return nil, observed, fmt.Errorf("open pull stream: %w", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	if s.Conn().RemotePeer() != j.executor {
		s.Reset()
		return nil, observed, fmt.Errorf("pull stream reached %s", s.Conn().RemotePeer())
	}
	if err := lp.WriteFrame(s, nil); err != nil {
		s.Reset()
		return nil, observed, fmt.Errorf("send pull request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, observed, err
	}
	env, err = lp.ReadFrame(s, lp.MaxGossipMessageSize)
	if err != nil {
		s.Reset()
		return nil, observed, fmt.Errorf("read pull answer: %w", err)
	}
	return env, observedIP(s.Conn().RemoteMultiaddr()), nil
}

// observedIP is the IP of a connection's remote address: its first IP
// component, which for a relayed connection is the relay's (as the
// resource manager counts it too). Invalid if it has none.
func observedIP(a ma.Multiaddr) netip.Addr {
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_IP4, ma.P_IP6:
			ip, _ := netip.AddrFromSlice(c.RawValue())
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// acceptPulled runs the rules over an executor's own answer to a pull.
func (v *Validator) acceptPulled(j pullJob, env []byte, observed netip.Addr) error {
	if len(env) == 0 {
		return lp.Errorf(lp.ErrMalformed.Code, "the executor answered with no announcement")
	}
	d, err := lp.DecodeAnnouncement(env) // rule 1
	if err != nil {
		return err
	}
	if d.Signer != j.executor {
		return lp.Errorf(lp.ErrInvalidSignature.Code, "the executor answered with an announcement signed by %s", d.Signer)
	}
	return v.acceptAnnouncement(d, origin{src: fromPull, from: j.executor, observed: observed})
}
