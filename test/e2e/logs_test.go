package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// LogLine is one line of a node's JSON log.
type LogLine map[string]any

// Message is the line's "message".
func (l LogLine) Message() string { return l.Str("message") }

// Str is a string field, "" if missing.
func (l LogLine) Str(key string) string {
	s, _ := l[key].(string)
	return s
}

// Strs is a string list field.
func (l LogLine) Strs(key string) []string {
	var out []string
	vs, _ := l[key].([]any)
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Logs returns the JSON lines of the node's current run. Lines that are
// not JSON (a crash, a race report) and a last line still being written
// are skipped.
func (n *Node) Logs() []LogLine {
	n.mu.Lock()
	start := n.logStart
	n.mu.Unlock()
	b, err := os.ReadFile(n.LogPath())
	if err != nil || int64(len(b)) < start {
		return nil
	}
	b = b[start:]
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return nil
	}
	var out []LogLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var l LogLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// FindLogs returns the current run's lines with message msg ("": any)
// for which match (nil: any) holds.
func (n *Node) FindLogs(msg string, match func(LogLine) bool) []LogLine {
	var out []LogLine
	for _, l := range n.Logs() {
		if (msg == "" || l.Message() == msg) && (match == nil || match(l)) {
			out = append(out, l)
		}
	}
	return out
}

// WaitLog waits up to Timeout for a line with message msg for which match
// (nil: any) holds, and returns the first. It fails the test if the
// process exits first.
func (n *Node) WaitLog(msg string, match func(LogLine) bool) LogLine {
	n.h.t.Helper()
	return n.WaitLogWithin(Timeout, msg, match)
}

// WaitLogWithin is WaitLog with its own timeout.
func (n *Node) WaitLogWithin(timeout time.Duration, msg string, match func(LogLine) bool) LogLine {
	n.h.t.Helper()
	var found LogLine
	WaitFor(n.h.t, timeout, func() error {
		if ls := n.FindLogs(msg, match); len(ls) > 0 {
			found = ls[0]
			return nil
		}
		if !n.Running() {
			return n.errExited()
		}
		return fmt.Errorf("%s has not logged %q", n.Name, msg)
	})
	return found
}
