package announcer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Seqs are an executor's sequence numbers: for announcements and for
// heartbeats, two separate counters.
type Seqs struct {
	Announcement, Heartbeat uint64
}

// SeqStore keeps Seqs across restarts. Store returns once what it stored
// survives a crash of the process or the machine.
type SeqStore interface {
	Load() (Seqs, error)
	Store(Seqs) error
}

// SeqFile is a SeqStore in one small file, by convention next to the
// identity key (`<identity>.seq`), mode 0600. Each Store writes a new file
// and renames it over the old one, so that a crash leaves the old numbers
// or the new ones, never a mix. A missing file holds zeros.
type SeqFile string

// seqFileJSON is the file's content. Numbers are strings: they exceed 2^53.
type seqFileJSON struct {
	Announcement string `json:"announcement_seq"`
	Heartbeat    string `json:"heartbeat_seq"`
}

// Load reads the file; a missing one holds zeros.
func (f SeqFile) Load() (Seqs, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return Seqs{}, nil
	}
	if err != nil {
		return Seqs{}, fmt.Errorf("sequence file: %w", err)
	}
	var j seqFileJSON
	var s Seqs
	if err = json.Unmarshal(b, &j); err == nil {
		if s.Announcement, err = strconv.ParseUint(j.Announcement, 10, 64); err == nil {
			s.Heartbeat, err = strconv.ParseUint(j.Heartbeat, 10, 64)
		}
	}
	if err != nil {
		return Seqs{}, fmt.Errorf("sequence file %s is damaged (%v): with the clock right, deleting it is safe", f, err)
	}
	return s, nil
}

// Store replaces the file's numbers with s, durably.
func (f SeqFile) Store(s Seqs) error {
	b, err := json.Marshal(seqFileJSON{Announcement: strconv.FormatUint(s.Announcement, 10), Heartbeat: strconv.FormatUint(s.Heartbeat, 10)})
	if err != nil {
		return err
	}
	dir, base := filepath.Split(string(f))
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+".tmp*") // mode 0600
	if err != nil {
		return fmt.Errorf("sequence file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), string(f))
	}
	if err != nil {
		return fmt.Errorf("sequence file: %w", err)
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // not supported everywhere; the file itself is synced
		d.Close()
	}
	return nil
}
