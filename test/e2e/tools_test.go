package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestVersion: `lloom version` prints the version stamped at build time.
func TestVersion(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	r := h.Run(nil, "version")
	want := "lloom " + testVersion + " (protocol 1, " + runtime.Version()
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, want) || strings.Count(r.Stdout, "\n") != 1 || r.Stderr != "" {
		t.Errorf("%s\nwant one line starting %q", r, want)
	}
}

// peerIDText is the text form of an Ed25519 peer id.
var peerIDText = regexp.MustCompile(`^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$`)

// TestKeygen: `lloom keygen --out F` writes a key only its owner can read
// and prints its peer id; it never overwrites a key.
func TestKeygen(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	path := filepath.Join(t.TempDir(), "keys", "node.key") // the directory does not exist yet
	r := h.Run(nil, "keygen", "--out", path)
	id := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || r.Stderr != "" || !peerIDText.MatchString(id) || r.Stdout != id+"\n" {
		t.Fatalf("%s\nwant exit 0 and one line: a peer id starting 12D3KooW", r)
	}
	if _, err := peer.Decode(id); err != nil {
		t.Errorf("printed peer id %q does not decode: %v", id, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	key, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	r = h.Run(nil, "keygen", "--out", path)
	if r.Code != 2 || r.Stdout != "" {
		t.Errorf("%s\nwant exit status 2 and nothing on stdout for an existing --out", r)
	}
	checkOneLine(t, r, path, "already exists")
	if again, err := os.ReadFile(path); err != nil || !bytes.Equal(again, key) {
		t.Errorf("keygen changed the existing key file (err %v)", err)
	}

	r = h.Run(nil, "keygen")
	if r.Code != 2 {
		t.Errorf("%s\nwant exit status 2 without --out", r)
	}
	checkOneLine(t, r, "--out")
}
