package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// File is the TOML configuration file. Every section is optional; a role
// reads the sections it knows and flags override what they set.
//
//	[node]       network, listen, port, identity, validators, log_level, log_format, metrics_listen
//	[validator]  stale_after, remove_after, max_executors, max_executors_per_ip, query_rate, addr_file, subscribe_announcements, http_listen,
//	             relay_service, relay_max_reservations, relay_max_circuits, relay_max_reservations_per_ip, relay_limit_data, relay_limit_duration
//	[executor]   heartbeat_interval, announce_models, evm_address
//	[backend]    url, api_key_env: the executor's OpenAI-compatible engine
//	[[models]]   one table per model the executor serves
type File struct {
	Node      NodeSection      `toml:"node"`
	Validator ValidatorSection `toml:"validator"`
	Executor  ExecutorSection  `toml:"executor"`
	Backend   BackendSection   `toml:"backend"`
	Models    []Model          `toml:"models"`
	Debug     DebugSection     `toml:"debug"`

	path  string
	stamp Stamp
	// modelLines are the lines of the [[models]] headers, for messages.
	modelLines []int
}

// Stamp identifies a version of a file by modification time and size.
type Stamp struct {
	ModTime time.Time
	Size    int64
}

// StampOf returns path's stamp now (zero if it cannot be read).
func StampOf(path string) Stamp {
	st, err := os.Stat(path)
	if err != nil {
		return Stamp{}
	}
	return Stamp{st.ModTime(), st.Size()}
}

// Stamp is the file's stamp as it was when it was read: a later change
// shows as a different StampOf.
func (f *File) Stamp() Stamp { return f.stamp }

// NodeSection holds settings every role shares.
type NodeSection struct {
	Network    string   `toml:"network"`
	Listen     []string `toml:"listen"`
	Port       *int     `toml:"port"`
	Identity   string   `toml:"identity"`
	Validators []string `toml:"validators"`
	LogLevel   string   `toml:"log_level"`
	LogFormat  string   `toml:"log_format"`
	// MetricsListen is --metrics-listen for whichever role reads the file
	// (a file describes one node): HOST:PORT.
	MetricsListen string `toml:"metrics_listen"`
}

// ValidatorSection holds validator settings.
type ValidatorSection struct {
	StaleAfter             any    `toml:"stale_after"`
	RemoveAfter            any    `toml:"remove_after"`
	MaxExecutors           *int   `toml:"max_executors"`
	MaxExecutorsPerIP      *int   `toml:"max_executors_per_ip"`
	QueryRate              *int   `toml:"query_rate"`
	AddrFile               string `toml:"addr_file"`
	SubscribeAnnouncements *bool  `toml:"subscribe_announcements"`
	// HTTPListen is --http-listen, the read-only API and dashboard: HOST:PORT.
	HTTPListen string `toml:"http_listen"`
	// The circuit relay service and its limits (DESIGN §11): the
	// --relay-* flags; relay_limit_data in bytes per direction.
	RelayService              *bool  `toml:"relay_service"`
	RelayMaxReservations      *int   `toml:"relay_max_reservations"`
	RelayMaxCircuits          *int   `toml:"relay_max_circuits"`
	RelayMaxReservationsPerIP *int   `toml:"relay_max_reservations_per_ip"`
	RelayLimitData            *int64 `toml:"relay_limit_data"`
	RelayLimitDuration        any    `toml:"relay_limit_duration"`
}

// ExecutorSection holds executor settings.
type ExecutorSection struct {
	HeartbeatInterval any    `toml:"heartbeat_interval"`
	AnnounceModels    *bool  `toml:"announce_models"`
	EVMAddress        string `toml:"evm_address"`
}

// BackendSection says where the executor's engine is.
type BackendSection struct {
	// URL is an OpenAI-compatible base URL ending in /v1.
	URL string `toml:"url"`
	// APIKeyEnv names the environment variable that holds the API key;
	// the key itself never goes in the file.
	APIKeyEnv string `toml:"api_key_env"`
}

// DebugSection holds testing aids. Load sets each model's reported load,
// "ACTIVE/QUEUED" by model id, until inference reports real load.
type DebugSection struct {
	Load map[string]string `toml:"load"`
}

// Model is one [[models]] table.
type Model struct {
	ID               string   `toml:"id"`
	Backend          string   `toml:"backend"`
	MaxContextLength uint32   `toml:"max_context_length"`
	Features         []string `toml:"features"`
	Architecture     string   `toml:"architecture"`
	ModelSize        string   `toml:"model_size"`
	Quantization     string   `toml:"quantization"`
	// Capacity nil takes DefaultCapacity; 0 is refused (no request could
	// ever run).
	Capacity    *uint32           `toml:"capacity"`
	Available   *bool             `toml:"available"`
	Pricing     Pricing           `toml:"pricing"`
	Performance Performance       `toml:"performance"`
	Metadata    map[string]string `toml:"metadata"`
	// BackendModel is the name the backend knows, when it differs from id.
	BackendModel string `toml:"backend_model"`
	// BackendURL overrides [backend] url for this model.
	BackendURL string `toml:"backend_url"`
	// Queue is how many requests may wait for a slot (default: capacity).
	Queue *uint32 `toml:"queue"`
}

// Pricing is a model's [models.pricing] table; amounts in wei as strings.
type Pricing struct {
	InputTokenPriceWei  string `toml:"input_token_price_wei"`
	OutputTokenPriceWei string `toml:"output_token_price_wei"`
	MinimumFeeWei       string `toml:"minimum_fee_wei"`
}

// Performance is a model's [models.performance] table.
type Performance struct {
	TokensPerSecond    float64 `toml:"tokens_per_second"`
	TimeToFirstTokenMs uint32  `toml:"time_to_first_token_ms"`
	SuccessRate        float64 `toml:"success_rate"`
	AverageLatencyMs   uint32  `toml:"average_latency_ms"`
}

// DefaultCapacity is the capacity of a model that does not give one. A
// model without a backend type announces none (clients show it unknown).
const DefaultCapacity = 4

// Load reads and checks a configuration file. Errors name the file, and
// the line where the TOML is wrong or a key is unknown.
func Load(path string) (*File, error) {
	stamp := StampOf(path)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f.path, f.stamp = path, stamp
	return f, nil
}

// Parse decodes and checks configuration text.
func Parse(b []byte) (*File, error) {
	var f File
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var se *toml.StrictMissingError
		if errors.As(err, &se) {
			var keys []string
			for _, e := range se.Errors {
				row, _ := e.Position()
				keys = append(keys, fmt.Sprintf("%q (line %d)", strings.Join(e.Key(), "."), row))
			}
			return nil, fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			return nil, errors.New(decodeErrorText(de))
		}
		return nil, err
	}
	f.modelLines = tableLines(b, "models")
	if err := lp.CheckEVMAddress(f.Executor.EVMAddress); err != nil {
		return nil, fmt.Errorf("%sexecutor.evm_address: %s", keyLine(b, "evm_address"), lp.WithoutCode(err))
	}
	for _, k := range []struct{ key, name, v string }{
		{"node.metrics_listen", "metrics_listen", f.Node.MetricsListen},
		{"validator.http_listen", "http_listen", f.Validator.HTTPListen},
	} {
		if _, _, err := net.SplitHostPort(k.v); k.v != "" && err != nil {
			return nil, fmt.Errorf("%s%s = %q: want HOST:PORT, e.g. 127.0.0.1:9400", keyLine(b, k.name), k.key, k.v)
		}
	}
	if _, err := f.Descriptors(); err != nil {
		return nil, err
	}
	if _, err := f.DebugLoads(); err != nil {
		return nil, err
	}
	for _, k := range []struct {
		key string
		v   any
	}{
		{"validator.stale_after", f.Validator.StaleAfter},
		{"validator.remove_after", f.Validator.RemoveAfter},
		{"validator.relay_limit_duration", f.Validator.RelayLimitDuration},
		{"executor.heartbeat_interval", f.Executor.HeartbeatInterval},
	} {
		if _, err := durationValue(k.key, k.v); err != nil {
			return nil, err
		}
	}
	return &f, nil
}

// ModelLoad is a model's reported load.
type ModelLoad struct{ Active, Queued uint32 }

// DebugLoads returns the [debug.load] table, checked.
func (f *File) DebugLoads() (map[string]ModelLoad, error) {
	out := make(map[string]ModelLoad, len(f.Debug.Load))
	for model, v := range f.Debug.Load {
		l, err := ParseLoad(v)
		if err != nil {
			return nil, fmt.Errorf("debug.load.%q: %w", model, err)
		}
		out[model] = l
	}
	return out, nil
}

// ParseLoad parses "ACTIVE/QUEUED" (or just "ACTIVE").
func ParseLoad(s string) (ModelLoad, error) {
	a, q, _ := strings.Cut(strings.TrimSpace(s), "/")
	active, err1 := strconv.ParseUint(a, 10, 32)
	queued, err2 := uint64(0), error(nil)
	if q != "" {
		queued, err2 = strconv.ParseUint(q, 10, 32)
	}
	if err1 != nil || err2 != nil {
		return ModelLoad{}, fmt.Errorf("load %q: want ACTIVE/QUEUED, e.g. 3/1", s)
	}
	return ModelLoad{uint32(active), uint32(queued)}, nil
}

// Path is the file the configuration came from, if any.
func (f *File) Path() string { return f.path }

// StaleAfter, RemoveAfter and HeartbeatInterval return the file's durations,
// 0 when unset. Load has checked them.
func (f *File) StaleAfter() time.Duration {
	d, _ := durationValue("", f.Validator.StaleAfter)
	return d
}

func (f *File) RemoveAfter() time.Duration {
	d, _ := durationValue("", f.Validator.RemoveAfter)
	return d
}

func (f *File) HeartbeatInterval() time.Duration {
	d, _ := durationValue("", f.Executor.HeartbeatInterval)
	return d
}

// RelayLimitDuration is validator.relay_limit_duration, 0 when unset.
func (f *File) RelayLimitDuration() time.Duration {
	d, _ := durationValue("", f.Validator.RelayLimitDuration)
	return d
}

// Descriptors converts the [[models]] tables to wire descriptors, checking
// each against the protocol's limits.
func (f *File) Descriptors() ([]*pb.ModelDescriptor, error) {
	if len(f.Models) > lp.MaxModels {
		return nil, fmt.Errorf("%d models exceed the limit of %d per executor", len(f.Models), lp.MaxModels)
	}
	seen := map[string]bool{}
	out := make([]*pb.ModelDescriptor, 0, len(f.Models))
	for i, m := range f.Models {
		where := fmt.Sprintf("models[%d] (id %q)", i, m.ID)
		if i < len(f.modelLines) {
			where = fmt.Sprintf("line %d, %s", f.modelLines[i], where)
		}
		if m.Capacity != nil && *m.Capacity == 0 {
			return nil, fmt.Errorf("%s: capacity = 0 would take no request; want at least 1 (leave it out for the default, %d)", where, DefaultCapacity)
		}
		d := m.Descriptor()
		if err := lp.CheckModelDescriptor(d); err != nil {
			return nil, fmt.Errorf("%s: %s", where, lp.WithoutCode(err))
		}
		if seen[m.ID] {
			return nil, fmt.Errorf("%s: model %q is listed twice", where, m.ID)
		}
		seen[m.ID] = true
		out = append(out, d)
	}
	return out, nil
}

// Descriptor converts one model table, filling defaults.
func (m Model) Descriptor() *pb.ModelDescriptor {
	d := &pb.ModelDescriptor{
		ModelId:          m.ID,
		BackendType:      m.Backend,
		MaxContextLength: m.MaxContextLength,
		Features:         m.Features,
		Architecture:     m.Architecture,
		ModelSize:        m.ModelSize,
		Quantization:     m.Quantization,
		Capacity:         DefaultCapacity,
		Available:        m.Available == nil || *m.Available,
		Metadata:         m.Metadata,
	}
	if m.Capacity != nil {
		d.Capacity = *m.Capacity
	}
	if m.Pricing != (Pricing{}) {
		d.Pricing = &pb.Pricing{
			InputTokenPriceWei:  m.Pricing.InputTokenPriceWei,
			OutputTokenPriceWei: m.Pricing.OutputTokenPriceWei,
			MinimumFeeWei:       m.Pricing.MinimumFeeWei,
		}
	}
	if m.Performance != (Performance{}) {
		d.Performance = &pb.Performance{
			TokensPerSecond:    m.Performance.TokensPerSecond,
			TimeToFirstTokenMs: m.Performance.TimeToFirstTokenMs,
			SuccessRate:        m.Performance.SuccessRate,
			AverageLatencyMs:   m.Performance.AverageLatencyMs,
		}
	}
	return d
}

// QuickModel is the descriptor for a --model ID flag: defaults for
// everything but the id.
func QuickModel(id string) *pb.ModelDescriptor {
	return Model{ID: id, Features: []string{"chat", "completion"}}.Descriptor()
}
