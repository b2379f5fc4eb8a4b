package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// unknownCommand is the error for an argument where c expects one of its
// commands, with the nearest one when the argument looks like a typo.
func unknownCommand(c *cobra.Command, arg string) error {
	msg := fmt.Sprintf("unknown command %q for %q", arg, c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only on its own path
	}
	if s := c.SuggestionsFor(arg); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usagef("%s (see '%s --help')", msg, c.CommandPath())
}

// flagError is every command's answer to a flag that does not parse: one
// line, the nearest flag for a typo, and where the help is.
func flagError(c *cobra.Command, err error) error {
	// "lloom client discver --validator X": the typo is the command, not
	// the flag, which only the mistyped command would have had.
	if c.HasSubCommands() {
		if args := c.Flags().Args(); len(args) > 0 {
			return unknownCommand(c, args[0])
		}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		if s := nearestFlag(c.Flags(), name); s != "" {
			msg += fmt.Sprintf("; did you mean --%s?", s)
		} else if sub := commandWithFlag(c, name); sub != "" {
			msg += fmt.Sprintf("; it belongs after a command, e.g. '%s --%s'", sub, name)
		}
	}
	return usagef("%s (see '%s --help')", msg, c.CommandPath())
}

// commandWithFlag is the path of the first of c's commands that has the
// flag name, or "".
func commandWithFlag(c *cobra.Command, name string) string {
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && sub.Flags().Lookup(name) != nil {
			return sub.CommandPath()
		}
	}
	return ""
}

// nearestFlag is the flag of fs whose name is nearest to name, within the
// distance cobra allows for command suggestions; "" if none is.
func nearestFlag(fs *pflag.FlagSet, name string) string {
	best, bestD := "", 3 // cobra's SuggestionsMinimumDistance is 2
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := editDistance(strings.ToLower(name), f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
