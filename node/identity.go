package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// LoadOrCreateIdentity reads the libp2p private key at path, creating an
// Ed25519 key there (mode 0600, parent directories 0700) if the file does
// not exist. A key file that others can read is refused: anyone who can
// read it can sign as this node.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, error) {
	id, err := LoadIdentity(path)
	if err != nil {
		return nil, err
	}
	if err := id.Save(); err != nil {
		return nil, err
	}
	return id.Key, nil
}

// Identity is a node's key and the file it lives in.
type Identity struct {
	Key  crypto.PrivKey
	Path string
	// New is a key made because the file did not exist; Save writes it.
	New bool
}

// LoadIdentity reads the libp2p private key at path, as
// LoadOrCreateIdentity does, except that a missing file gives a new key
// that is not written yet: a node saves it (Save) once it runs, so that a
// start that fails (a port in use) leaves no key file behind. It creates
// the parent directories (0700), for the files that go next to the key.
func LoadIdentity(path string) (*Identity, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("identity %s: %w", path, err)
		}
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("identity: generate key: %w", err)
		}
		return &Identity{Key: key, Path: path, New: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity %s: mode %04o lets others read the key; run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("identity %s: the file is empty, not a key; restore the key, or delete the file to start with a new identity (a new peer id)", path)
	}
	key, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		// The decoder's own words (protobuf field names) mean nothing here.
		return nil, fmt.Errorf("identity %s: not a libp2p private key (lloom keygen writes one); restore the key, or delete the file to start with a new identity", path)
	}
	return &Identity{Key: key, Path: path}, nil
}

// Save writes a new key to its file, which must still not exist; a key
// that was read from its file is left as it is.
func (id *Identity) Save() error {
	if !id.New {
		return nil
	}
	if err := writeIdentity(id.Path, id.Key); err != nil {
		return err
	}
	id.New = false
	return nil
}

// CreateIdentity writes a new Ed25519 key to path, which must not exist.
func CreateIdentity(path string) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	if err := writeIdentity(path, key); err != nil {
		return nil, err
	}
	return key, nil
}

// writeIdentity writes key to path (mode 0600, parent directories 0700),
// which must not exist.
func writeIdentity(path string, key crypto.PrivKey) error {
	b, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("identity: marshal key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("identity %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("identity %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("identity %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("identity %s: %w", path, err)
	}
	return nil
}

// DefaultHome returns $LLOOM_HOME, else ~/.lloom.
func DefaultHome() string {
	if h := os.Getenv("LLOOM_HOME"); h != "" {
		return h
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".lloom")
	}
	return ".lloom"
}
