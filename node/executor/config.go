package executor

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Config configures an executor.
type Config struct {
	// Network, Key (whose peer id is the executor id), Listen (announced
	// so that clients can dial the executor), logging and test hooks.
	node.Config
	// Validators to bootstrap from and stay connected to.
	Validators []node.BootstrapPeer
	// Models served at start.
	Models []*pb.ModelDescriptor
	// HeartbeatInterval between heartbeats (jittered by ±10%).
	HeartbeatInterval time.Duration
	// AnnounceModels false keeps the executor silent: no announcements, no
	// heartbeats.
	AnnounceModels bool
	// EVMAddress is announced for payments (optional).
	EVMAddress string
	// MaxMessageAge is how old a relayed message may be (the validators'
	// removal timeout).
	MaxMessageAge time.Duration
	// RemovalTimeout bounds the wait for the REMOVAL to leave on shutdown.
	RemovalTimeout time.Duration

	// Backend is the OpenAI-compatible engine that answers requests. With
	// no URL (and no per-model BackendURL) the executor runs announce-only:
	// it announces its models and answers their requests with 6003.
	Backend BackendConfig
	// Serving holds per-model serving settings, by announced model id.
	Serving map[string]ModelServing
	// Discover announces the models the backend lists (GET /v1/models),
	// each described by DiscoverTemplate, and follows the list's changes.
	// It needs Backend.URL and no Models.
	Discover         bool
	DiscoverTemplate *pb.ModelDescriptor
	// DiscoverQueue is the queue of discovered models (nil: capacity).
	DiscoverQueue *uint32
	// InferenceRate is how many requests per second one peer may start
	// (bursts of twice as many); 0 turns the limit off.
	InferenceRate float64
	// QueueWait is the longest a request waits for a slot before 6002.
	QueueWait time.Duration
	// RequestTimeout is how long after opening a stream a client has to
	// send its request frame (else 4002).
	RequestTimeout time.Duration
	// WriteTimeout bounds writing one answer frame: a client that stops
	// reading for longer has its stream reset and its backend call
	// cancelled.
	WriteTimeout time.Duration
	// SeqFile keeps the sequence numbers used (lloom executor: next to the
	// identity, `<identity>.seq`), so that a restarted executor whose clock
	// went back is not ignored as a replay; "" takes them from the clock
	// alone. See announcer.State.Persist.
	SeqFile string
	// Now is the clock that stamps announcements and heartbeats (tests
	// step it).
	Now func() time.Time
}

// seqReserve is how far ahead of use sequence numbers are reserved in the
// SeqFile: one write a minute at most, and after a crash the numbers run
// at most a minute ahead of the clock until it catches up.
const seqReserve = time.Minute

// BackendConfig says how to reach the backend.
type BackendConfig struct {
	// URL is an OpenAI-compatible base URL ending in /v1.
	URL string
	// APIKey is sent as a bearer token; empty sends none.
	APIKey string
	// ListInterval is how often the backend's model list is read
	// (discovery, and models the backend said it did not know).
	ListInterval time.Duration
	// ProbeInterval is how often a backend that failed is asked again.
	ProbeInterval time.Duration
	// HTTPClient, if set, replaces the default client (tests).
	HTTPClient *http.Client
}

// ModelServing is how one model is served.
type ModelServing struct {
	// BackendModel is the name the backend knows, when it differs from
	// the announced id.
	BackendModel string
	// BackendURL overrides Backend.URL for this model.
	BackendURL string
	// Queue is how many requests may wait for a slot; nil means as many
	// as the model's capacity.
	Queue *uint32
}

// Announce-only reports whether no model has a backend.
func (c Config) announceOnly() bool {
	if c.Backend.URL != "" {
		return false
	}
	for _, s := range c.Serving {
		if s.BackendURL != "" {
			return false
		}
	}
	return true
}

// InferenceStreams is how many inference streams one peer may need at
// once: every model's capacity plus queue, at least 256.
func (c Config) inferenceStreams() int {
	n := 0
	for _, m := range c.Models {
		n += int(m.GetCapacity())
		if q := c.Serving[m.GetModelId()].Queue; q != nil {
			n += int(*q)
		} else {
			n += int(m.GetCapacity())
		}
	}
	return max(n, 256)
}

// DefaultConfig returns the defaults; Key must still be set.
func DefaultConfig() Config {
	return Config{
		Config:            reachDefaults(node.DefaultConfig()),
		HeartbeatInterval: 10 * time.Second,
		AnnounceModels:    true,
		MaxMessageAge:     2 * time.Minute,
		RemovalTimeout:    3 * time.Second,
		Backend: BackendConfig{
			ListInterval:  30 * time.Second,
			ProbeInterval: 3 * time.Second,
		},
		InferenceRate:  50,
		QueueWait:      60 * time.Second,
		RequestTimeout: 10 * time.Second,
		WriteTimeout:   30 * time.Second,
		Now:            time.Now,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	if c.HeartbeatInterval < 100*time.Millisecond {
		return fmt.Errorf("heartbeat interval %s is below 100ms", c.HeartbeatInterval)
	}
	if c.MaxMessageAge <= 0 {
		return fmt.Errorf("max message age %s must be positive", c.MaxMessageAge)
	}
	if len(c.Models) > lp.MaxModels {
		return fmt.Errorf("%d models exceed the limit of %d", len(c.Models), lp.MaxModels)
	}
	for _, m := range c.Models {
		if err := lp.CheckModelDescriptor(m); err != nil {
			return fmt.Errorf("model %q: %w", m.GetModelId(), err)
		}
	}
	if err := lp.CheckEVMAddress(c.EVMAddress); err != nil {
		return fmt.Errorf("evm address: %w", err)
	}
	if len(c.AgentVersion) > lp.MaxShortStringLen {
		return fmt.Errorf("agent version of %d bytes exceeds the announcement's limit of %d", len(c.AgentVersion), lp.MaxShortStringLen)
	}
	for _, u := range c.backendURLs() {
		if err := checkBackendURL(u); err != nil {
			return err
		}
	}
	if c.Discover {
		if c.Backend.URL == "" {
			return fmt.Errorf("discovering models needs a backend URL")
		}
		if c.DiscoverTemplate == nil {
			return fmt.Errorf("discovering models needs a descriptor template")
		}
	}
	if c.Backend.ListInterval <= 0 || c.Backend.ProbeInterval <= 0 {
		return fmt.Errorf("backend list and probe intervals must be positive")
	}
	if c.InferenceRate < 0 {
		return fmt.Errorf("inference rate %v must not be negative", c.InferenceRate)
	}
	if c.QueueWait <= 0 {
		return fmt.Errorf("queue wait %s must be positive", c.QueueWait)
	}
	if c.RequestTimeout <= 0 || c.WriteTimeout <= 0 {
		return fmt.Errorf("request timeout %s and write timeout %s must be positive", c.RequestTimeout, c.WriteTimeout)
	}
	if c.Now == nil {
		return fmt.Errorf("executor: no clock")
	}
	return nil
}

func (c Config) backendURLs() []string {
	var out []string
	if c.Backend.URL != "" {
		out = append(out, c.Backend.URL)
	}
	for _, s := range c.Serving {
		if s.BackendURL != "" {
			out = append(out, s.BackendURL)
		}
	}
	return out
}

// checkBackendURL wants an http(s) URL with a host, as the user typed it.
func checkBackendURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("backend URL %q: want http://HOST:PORT/v1 (an OpenAI-compatible base URL)", s)
	}
	return nil
}
