//go:build netns

package netns

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// topo is the namespaces of one test: names carry a random run id, and
// t.Cleanup deletes exactly those, also when the test fails.
type topo struct {
	t   *testing.T
	id  string
	nss []string
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("no ip command: install iproute2 (CI does)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("no nft command: install nftables (CI does)")
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	tp := &topo{t: t, id: "ll" + hex.EncodeToString(b[:])}
	t.Cleanup(func() {
		for i := len(tp.nss) - 1; i >= 0; i-- {
			_ = exec.Command("ip", "netns", "pids", tp.nss[i]).Run()
			if out, err := exec.Command("ip", "netns", "pids", tp.nss[i]).Output(); err == nil {
				for _, p := range strings.Fields(string(out)) {
					_ = exec.Command("kill", "-9", p).Run() // only processes inside our namespace
				}
			}
			_ = exec.Command("ip", "netns", "del", tp.nss[i]).Run()
		}
	})
	return tp
}

// ns creates a namespace named after the run and returns its name.
func (tp *topo) ns(name string) string {
	n := tp.id + "-" + name
	tp.run("ip", "netns", "add", n)
	tp.nss = append(tp.nss, n)
	tp.in(n, "ip", "link", "set", "lo", "up")
	return n
}

func (tp *topo) run(args ...string) string {
	tp.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (tp *topo) in(ns string, args ...string) string {
	tp.t.Helper()
	return tp.run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// link connects a and b with a veth pair; the ends are named ea and eb.
// Link names are per namespace, so they are created with a temporary
// unique name in a and moved.
var linkSeq int

func (tp *topo) link(a, ea, b, eb string) {
	tp.t.Helper()
	linkSeq++
	tmp := fmt.Sprintf("%sv%d", tp.id, linkSeq)
	tp.in(a, "ip", "link", "add", ea, "type", "veth", "peer", "name", tmp)
	tp.in(a, "ip", "link", "set", tmp, "netns", b)
	tp.in(b, "ip", "link", "set", tmp, "name", eb)
	tp.in(a, "ip", "link", "set", ea, "up")
	tp.in(b, "ip", "link", "set", eb, "up")
}

func (tp *topo) addr(ns, dev, cidr string) { tp.in(ns, "ip", "addr", "add", cidr, "dev", dev) }

// publicSegment is a bridge in its own namespace; each host gets a veth
// into it. 1.2.3.0/24 exists only inside the namespaces.
type segment struct {
	tp *topo
	sw string
	n  int
}

func (tp *topo) segment(name string) *segment {
	sw := tp.ns(name)
	tp.in(sw, "ip", "link", "add", "br0", "type", "bridge")
	tp.in(sw, "ip", "link", "set", "br0", "up")
	return &segment{tp: tp, sw: sw}
}

func (s *segment) attach(ns, dev, cidr string) {
	s.n++
	port := fmt.Sprintf("p%d", s.n)
	s.tp.link(s.sw, port, ns, dev)
	s.tp.in(s.sw, "ip", "link", "set", port, "master", "br0")
	s.tp.addr(ns, dev, cidr)
}

// home builds a masquerading router (wan on the public segment) and one
// host behind it on lan; the router drops unsolicited inbound traffic,
// to itself too.
func (tp *topo) home(pub *segment, name, wanCIDR, lanNet string) (host string) {
	r := tp.ns(name + "r")
	host = tp.ns(name)
	pub.attach(r, "wan", wanCIDR)
	tp.link(r, "lan", host, "eth0")
	tp.addr(r, "lan", lanNet+".1/24")
	tp.addr(host, "eth0", lanNet+".2/24")
	tp.in(host, "ip", "route", "add", "default", "via", lanNet+".1")
	tp.in(r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	rules := `
table ip nat {
  chain post { type nat hook postrouting priority srcnat; oifname "wan" masquerade; }
}
table inet filter {
  chain input { type filter hook input priority 0; policy drop; ct state established,related accept; iifname { "lo", "lan" } accept; }
  chain forward { type filter hook forward priority 0; policy drop; ct state established,related accept; iifname "lan" oifname "wan" accept; }
}
`
	cmd := exec.Command("ip", "netns", "exec", r, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		tp.t.Fatalf("nft in %s: %v\n%s", r, err, out)
	}
	return host
}
