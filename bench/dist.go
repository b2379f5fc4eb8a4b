package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// Dist is a sample of durations, summarised by percentiles. The machine
// these run on is shared and noisy, so a figure is a distribution or a
// ratio from one run, never one time.
type Dist struct {
	Name string
	d    []time.Duration
}

// Add records one sample.
func (s *Dist) Add(d time.Duration) { s.d = append(s.d, d) }

// N is the number of samples.
func (s *Dist) N() int { return len(s.d) }

// Quantile returns the q-quantile (0..1) by the nearest-rank method: p99
// of 100 samples is the 99th smallest.
func (s *Dist) Quantile(q float64) time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	d := slices.Clone(s.d)
	slices.Sort(d)
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// Max is the largest sample.
func (s *Dist) Max() time.Duration { return s.Quantile(1) }

// Mean is the average sample.
func (s *Dist) Mean() time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range s.d {
		sum += d
	}
	return sum / time.Duration(len(s.d))
}

// String is "name: n=… p50=… p90=… p99=… max=…".
func (s *Dist) String() string {
	return fmt.Sprintf("%s: n=%d p50=%s p90=%s p99=%s max=%s", s.Name, s.N(),
		round(s.Quantile(.5)), round(s.Quantile(.9)), round(s.Quantile(.99)), round(s.Max()))
}

// Report logs the distribution and reports its percentiles as benchmark
// metrics in the given unit ("ms" or "us"), named after the distribution.
func (s *Dist) Report(b *testing.B, unit string) {
	b.Helper()
	b.Log(s.String())
	scale := map[string]float64{"ms": 1e6, "us": 1e3, "s": 1e9}[unit]
	if scale == 0 {
		panic("unit must be s, ms or us")
	}
	name := strings.ReplaceAll(s.Name, " ", "-")
	for _, q := range []struct {
		tag string
		q   float64
	}{{"p50", .5}, {"p90", .9}, {"p99", .99}, {"max", 1}} {
		b.ReportMetric(float64(s.Quantile(q.q))/scale, name+"-"+q.tag+"-"+unit)
	}
}

// round keeps three significant digits of a duration for logs.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(10 * time.Nanosecond)
	}
	return d
}
