package main

import (
	"path/filepath"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/pflag"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/pkg/config"
)

// durationFlag is a time.Duration flag that also takes a bare number of
// seconds ("10" = 10s).
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return "0s"
	}
	return f.d.String()
}
func (f durationFlag) Type() string { return "duration" }
func (f durationFlag) Set(s string) error {
	d, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

func durationVar(fs *pflag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Var(durationFlag{p}, name, usage)
}

// netFlags are the flags every listening node has.
type netFlags struct {
	port     int
	listen   []string
	identity string
	peers    string
}

func (n *netFlags) register(fs *pflag.FlagSet, role string, defaultPort int, peersUsage string) {
	fs.IntVar(&n.port, "port", defaultPort, "listen on TCP and QUIC on this port, all interfaces (0 picks free ports)")
	fs.StringSliceVar(&n.listen, "listen", nil, "listen multiaddrs (repeatable; overrides --port), e.g. /ip4/127.0.0.1/tcp/0")
	fs.StringVar(&n.identity, "identity", "", "key file, created (mode 0600) if missing (default $LLOOM_HOME/"+role+".key, else ~/.lloom/"+role+".key)")
	fs.StringVar(&n.peers, "validator", "", peersUsage)
}

func (n *netFlags) listenAddrs() ([]ma.Multiaddr, error) {
	if len(n.listen) > 0 {
		addrs, err := node.ParseMultiaddrs(n.listen)
		if err != nil {
			return nil, usagef("--listen: %v", err)
		}
		return addrs, nil
	}
	addrs, err := node.PortListenAddrs(n.port)
	if err != nil {
		return nil, usagef("--port: %v", err)
	}
	return addrs, nil
}

// key loads the identity; a new one is written only by its Save, once the
// node runs.
func (n *netFlags) key(role string) (*node.Identity, error) {
	path := n.identity
	if path == "" {
		path = filepath.Join(node.DefaultHome(), role+".key")
	}
	id, err := node.LoadIdentity(path)
	if err != nil {
		return nil, usageError{err}
	}
	return id, nil
}

func (n *netFlags) bootstrap() ([]node.BootstrapPeer, error) {
	peers, err := node.ParseBootstrapPeers(n.peers)
	if err != nil {
		return nil, usagef("--validator: %v", err)
	}
	return peers, nil
}

func positive(name string, d time.Duration) error {
	if d <= 0 {
		return usagef("--%s %s: must be positive", name, d)
	}
	return nil
}

// fillNode sets what every listening role shares, from the flags and the
// global options, and returns the identity used. It loads the key (or
// makes a new one, which the caller saves once the node runs), so it runs
// after the role's own flags are checked.
func (a *app) fillNode(nf *netFlags, role string, c *node.Config) (*node.Identity, error) {
	var err error
	if c.Listen, err = nf.listenAddrs(); err != nil {
		return nil, err
	}
	id, err := nf.key(role)
	if err != nil {
		return nil, err
	}
	c.Key = id.Key
	c.Network, c.Logger, c.AgentVersion = a.network, a.log, "lloom/"+version
	return id, nil
}

// saveIdentity writes a new identity now that the node runs, and logs
// which identity it runs as.
func (a *app) saveIdentity(id *node.Identity, peerID string) error {
	created := id.New
	if err := id.Save(); err != nil {
		return err
	}
	a.log.Info().Str("identity", id.Path).Str("peer", peerID).Bool("created", created).Msg("Identity loaded")
	return nil
}
