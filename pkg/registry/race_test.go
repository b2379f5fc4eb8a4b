//go:build race

package registry

// raceEnabled is set when the race detector is on, which makes generating
// 10,000 signed fixtures slow and distorts memory figures.
const raceEnabled = true
