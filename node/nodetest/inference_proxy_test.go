package nodetest_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/node/client"
)

// proxy forwards TCP connections to one libp2p address and can freeze
// them: bytes stop flowing both ways while the sockets stay open, which is
// what a peer that lost power or its network looks like (no FIN, no RST).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen bool          // guarded by mu
	thaw   chan struct{} // guarded by mu: closed at cleanup, ending frozen pipes
	conns  []net.Conn    // guarded by mu
	wg     sync.WaitGroup
}

// newProxy listens on loopback and forwards to the TCP address of h.
func newProxy(t *testing.T, h host.Host) *proxy {
	t.Helper()
	var target string
	for _, a := range h.Addrs() {
		if ip, err := a.ValueForProtocol(ma.P_IP4); err == nil && ip == "127.0.0.1" {
			if port, err := a.ValueForProtocol(ma.P_TCP); err == nil {
				target = net.JoinHostPort(ip, port)
			}
		}
	}
	if target == "" {
		t.Fatalf("no loopback TCP address in %v", h.Addrs())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, thaw: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		close(p.thaw)
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's multiaddr (without /p2p/).
func (p *proxy) Addr() string {
	a := p.ln.Addr().(*net.TCPAddr)
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", a.Port)
}

// Freeze stops every byte, in both directions, from now on.
func (p *proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

func (p *proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(out, in) })
		p.wg.Go(func() { p.pipe(in, out) })
	}
}

// pipe copies until a side closes; once frozen, what it reads is dropped
// and it waits for the cleanup instead of closing anything.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		frozen, thaw := p.frozen, p.thaw
		p.mu.Unlock()
		if frozen {
			<-thaw
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "closed") {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// via returns x reached through the proxy instead of its own addresses.
func (p *proxy) via(x *client.Executor) *client.Executor {
	y := *x
	y.Addrs = []string{p.Addr()}
	return &y
}
