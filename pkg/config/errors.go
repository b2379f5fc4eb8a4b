package config

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// The TOML decoder's messages speak of Go types and struct fields; these
// turn the common ones into the file's own terms.
var (
	typeMismatch = regexp.MustCompile(`^toml: cannot decode TOML (.+) into struct field \S+ of type (\S+)$`)
	tooLarge     = regexp.MustCompile(`^toml: integer value (\S+) cannot be stored in (\S+)$`)
	negative     = regexp.MustCompile(`^toml: negative integer value (\S+) cannot be stored in \S+$`)
)

// decodeErrorText is a decoding error as one line: where, which key, and
// what the key wants.
func decodeErrorText(de *toml.DecodeError) string {
	row, col := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if m := typeMismatch.FindStringSubmatch(de.Error()); m != nil {
		msg = fmt.Sprintf("want %s, not %s", goTypeWords(m[2]), tomlKindWords(m[1]))
	} else if m := tooLarge.FindStringSubmatch(de.Error()); m != nil {
		msg = fmt.Sprintf("%s is too large: want %s", m[1], goTypeWords(m[2]))
	} else if m := negative.FindStringSubmatch(de.Error()); m != nil {
		msg = fmt.Sprintf("%s is negative: want 0 or more", m[1])
	}
	if key := strings.Join(de.Key(), "."); key != "" {
		return fmt.Sprintf("line %d, column %d: key %s: %s", row, col, key, msg)
	}
	return fmt.Sprintf("line %d, column %d: %s", row, col, msg)
}

func goTypeWords(t string) string {
	switch strings.TrimPrefix(t, "*") {
	case "string":
		return `a string in quotes, e.g. "1000"`
	case "uint32":
		return "a whole number from 0 to 4294967295"
	case "int", "int64":
		return "a whole number"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "[]string":
		return `a list of strings, e.g. ["chat", "completion"]`
	case "map[string]string":
		return "a table of strings"
	}
	if strings.HasPrefix(t, "config.") || strings.HasPrefix(t, "[]config.") {
		return "a table"
	}
	return t
}

func tomlKindWords(k string) string {
	switch k {
	case "integer":
		return "an integer"
	case "float":
		return "a number with a fraction"
	case "string":
		return "a string"
	case "boolean", "bool":
		return "true or false"
	case "array":
		return "a list"
	case "inline table", "table":
		return "a table"
	}
	return k
}

// tableLines are the lines (from 1) of the [[name]] headers in b, in order.
func tableLines(b []byte, name string) []int {
	header := regexp.MustCompile(`^\s*\[\[\s*` + regexp.QuoteMeta(name) + `\s*\]\]`)
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for n := 1; sc.Scan(); n++ {
		if header.MatchString(sc.Text()) {
			out = append(out, n)
		}
	}
	return out
}

// keyLine is "line N, " for the first line of b that sets key, or "".
func keyLine(b []byte, key string) string {
	set := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(key) + `\s*=`)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for n := 1; sc.Scan(); n++ {
		if set.MatchString(sc.Text()) {
			return fmt.Sprintf("line %d, ", n)
		}
	}
	return ""
}
