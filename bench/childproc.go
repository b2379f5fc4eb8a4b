package bench

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"time"
)

// startSelf starts the running test binary again with env set (its
// TestMain, or the test named by run, serves the role env names), and
// returns the command, its standard input and a JSON decoder of its
// standard output. Its standard error is ours.
func startSelf(run, env string) (*exec.Cmd, io.WriteCloser, *json.Decoder, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.Command(self, "-test.run="+run)
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, in, json.NewDecoder(bufio.NewReader(out)), nil
}

// endChild closes a child's standard input (after the caller has asked it
// to stop) and waits for it to exit, killing it after grace.
func endChild(cmd *exec.Cmd, in io.Closer, grace time.Duration) error {
	in.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		return <-done
	}
}
