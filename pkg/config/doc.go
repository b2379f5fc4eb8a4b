// Package config reads lloom's TOML configuration file and the value forms
// that flags, environment variables and the file share (durations). The
// file is optional everywhere; flags and environment variables override it.
package config
