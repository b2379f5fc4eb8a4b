package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration accepts Go duration syntax ("1s", "500ms", "2m") and a bare
// number of seconds ("10", "1.5"). Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return secondsToDuration(f, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want Go syntax such as 10s or 500ms, or a number of seconds", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

func secondsToDuration(f float64, s string) (time.Duration, error) {
	if math.IsNaN(f) || f < 0 || f > float64(math.MaxInt64)/float64(time.Second) {
		return 0, fmt.Errorf("duration %q: want a non-negative number of seconds", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// durationValue converts a TOML value (string or number of seconds).
func durationValue(key string, v any) (time.Duration, error) {
	var (
		secs float64
		text string
	)
	switch x := v.(type) {
	case nil:
		return 0, nil
	case string:
		d, err := ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", key, err)
		}
		return d, nil
	case int64:
		secs, text = float64(x), strconv.FormatInt(x, 10)
	case float64:
		secs, text = x, strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return 0, fmt.Errorf("%s: want a duration such as \"10s\" or a number of seconds, got %v", key, v)
	}
	d, err := secondsToDuration(secs, text)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}
