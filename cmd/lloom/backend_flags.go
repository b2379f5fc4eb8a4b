package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/pkg/config"
)

// backendFlags are the executor's serving flags.
type backendFlags struct {
	url      string
	keyEnv   string
	capacity uint32
	queue    uint32
	queueSet bool
	rate     float64
}

func (b *backendFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&b.url, "backend-url", "", "OpenAI-compatible base URL of your LLM engine, ending in /v1, e.g. http://127.0.0.1:11434/v1 for Ollama (env LLOOM_BACKEND_URL; none: announce-only)")
	fs.StringVar(&b.keyEnv, "backend-key-env", "", "name of the environment variable that holds the backend's API key (the key itself never goes on the command line)")
	fs.Uint32Var(&b.capacity, "capacity", 0, "concurrent requests per model for models given by --model or listed by the backend (default 4)")
	fs.Uint32Var(&b.queue, "queue", 0, "requests that may wait for a slot, per model, beyond --capacity (default: as many as the capacity)")
	fs.Float64Var(&b.rate, "inference-rate", executor.DefaultConfig().InferenceRate, "inference requests per second one peer may start (bursts of twice as many; 0: no limit)")
}

// fill puts the flags and the config file's [backend] and [[models]]
// serving keys into cfg; flags win over the file.
func (b *backendFlags) fill(cmd *cobra.Command, f *config.File, ids []string, cfg *executor.Config) error {
	b.queueSet = cmd.Flags().Changed("queue")
	if b.capacity == 0 && cmd.Flags().Changed("capacity") {
		return usagef("--capacity 0: want at least 1")
	}
	if b.url == "" {
		b.url = os.Getenv("LLOOM_BACKEND_URL")
	}
	if f != nil {
		if b.url == "" {
			b.url = f.Backend.URL
		}
		if b.keyEnv == "" {
			b.keyEnv = f.Backend.APIKeyEnv
		}
	}
	cfg.Backend.URL = strings.TrimRight(b.url, "/")
	if b.keyEnv != "" {
		key, ok := os.LookupEnv(b.keyEnv)
		if !ok || key == "" {
			return usagef("--backend-key-env %s: that environment variable is not set", b.keyEnv)
		}
		cfg.Backend.APIKey = key
	}
	cfg.InferenceRate = b.rate
	cfg.Serving = servingOf(f, ids, b.queue, b.queueSet)
	if len(cfg.Models) == 0 && cfg.Backend.URL != "" {
		cfg.Discover = true
		t := config.QuickModel("template")
		if b.capacity > 0 {
			t.Capacity = b.capacity
		}
		cfg.DiscoverTemplate = t
		if b.queueSet {
			cfg.DiscoverQueue = &b.queue
		}
	}
	return nil
}

// servingOf reads each [[models]] table's serving keys; --queue applies to
// models given by --model and to tables without their own queue.
func servingOf(f *config.File, ids []string, queue uint32, queueSet bool) map[string]executor.ModelServing {
	out := map[string]executor.ModelServing{}
	if f != nil {
		for _, m := range f.Models {
			s := executor.ModelServing{BackendModel: m.BackendModel, BackendURL: strings.TrimRight(m.BackendURL, "/"), Queue: m.Queue}
			if s.Queue == nil && queueSet {
				q := queue
				s.Queue = &q
			}
			out[m.ID] = s
		}
	}
	for _, id := range ids {
		if _, inFile := out[id]; !inFile && queueSet {
			q := queue
			out[id] = executor.ModelServing{Queue: &q}
		}
	}
	return out
}
