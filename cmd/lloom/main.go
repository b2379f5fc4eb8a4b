// Command lloom runs a node of the lloom network (validator, executor or
// client) and its tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	err := newRootCommand(os.Stdout, os.Stderr).Execute()
	os.Exit(exitCode(err))
}

// exitCode prints err as one line and maps it to the process exit status:
// 0 success, 2 bad usage or configuration, 130 interrupted (Ctrl-C while
// a request ran), 1 anything else.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "lloom: "+oneLine(err))
	if errors.Is(err, context.Canceled) {
		return 130 // interrupted, as a shell reports SIGINT
	}
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// usageError marks an error in what the user asked for (a flag, a value,
// a config file), as opposed to a failure while running.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// oneLine folds a multi-line error (go-libp2p's dial errors list every
// address tried, one per line) into one line.
func oneLine(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "*"))
	}
	return strings.Join(lines, "; ")
}
