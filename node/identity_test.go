package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestIdentityPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "node.key")
	k1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := peer.IDFromPrivateKey(k1)
	id2, _ := peer.IDFromPrivateKey(k2)
	if id1 != id2 {
		t.Fatalf("peer id changed across loads: %s then %s", id1, id2)
	}
}

func TestIdentityRefusals(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.key")
	if _, err := CreateIdentity(open); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{open, "chmod 600"},
		{garbage, "not a libp2p private key"},
	} {
		_, err := LoadOrCreateIdentity(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: error %v, want one naming the file and saying %q", tc.path, err, tc.want)
		}
	}
	if _, err := CreateIdentity(open); err == nil {
		t.Error("CreateIdentity overwrote an existing key")
	}
}

func TestListenErrorsNameTheAddress(t *testing.T) {
	key, err := CreateIdentity(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(HostConfig{Key: key, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	taken := h.Addrs()[0]
	key2, _ := CreateIdentity(filepath.Join(t.TempDir(), "k2"))
	_, err = NewHost(HostConfig{Key: key2, Listen: []ma.Multiaddr{taken}})
	if err == nil || !strings.Contains(err.Error(), taken.String()) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second host on %s: %v, want an error naming the address and the port in use", taken, err)
	}
	if _, err := PortListenAddrs(70000); err == nil {
		t.Error("port 70000 accepted")
	}
	if _, err := ParseMultiaddrs([]string{"/ip4/1.2.3.4/tcp/1", "nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("bad multiaddr: %v, want an error naming it", err)
	}
}

// An empty key file is named for what it is, in the user's words, not the
// protobuf decoder's.
func TestIdentityEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadIdentity(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "the file is empty") ||
		strings.Contains(err.Error(), "proto") {
		t.Fatalf("empty key file: %v, want an error naming the file and saying it is empty, without protobuf words", err)
	}
}

// A missing key file gives a key that exists only in memory until Save:
// a node that fails to start leaves no key file behind.
func TestIdentitySavedOnlyBySave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "node.key")
	id, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !id.New {
		t.Fatal("a key made for a missing file is not marked new")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("LoadIdentity wrote %s (%v); only Save may", path, err)
	}
	if err := id.Save(); err != nil {
		t.Fatal(err)
	}
	again, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := peer.IDFromPrivateKey(id.Key)
	if got, _ := peer.IDFromPrivateKey(again.Key); got != want || again.New {
		t.Fatalf("after Save the file holds %s (new %v), want %s", got, again.New, want)
	}
	if err := again.Save(); err != nil {
		t.Fatalf("Save of a key read from its file: %v, want nothing done", err)
	}
}
