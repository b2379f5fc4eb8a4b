package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/lloom/lloom/node/client"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Config configures a gateway.
type Config struct {
	// Client reaches the network: validators, network name, identity.
	Client client.Config
	// Listen is the HTTP address, host:port.
	Listen string
	// APIKey, when set, is required as "Authorization: Bearer KEY".
	// Listening anywhere but loopback requires one.
	APIKey string
	// Filters and price limits applied to every request (the defaults of
	// `lloom gateway`'s flags).
	Filters           *pb.QueryFilters
	MaxInputPriceWei  string
	MaxOutputPriceWei string
	MaxFeeWei         string
	// MaxConcurrent bounds the requests in flight; past it 429.
	MaxConcurrent int
	// Timeout bounds one request until its answer starts (504 past it);
	// an answer that has started streams to its end.
	Timeout time.Duration
	// ModelsRefresh is how often the model list is read from the
	// validators; GET /v1/models answers from that copy.
	ModelsRefresh time.Duration
	// MaxBodyBytes bounds a request body (413 past it).
	MaxBodyBytes int64
	Logger       zerolog.Logger
}

// DefaultConfig returns the defaults; Client.Validators must still be set.
func DefaultConfig() Config {
	return Config{
		Client:        client.DefaultConfig(),
		Listen:        "127.0.0.1:8000",
		Filters:       &pb.QueryFilters{},
		MaxConcurrent: 256,
		Timeout:       2 * time.Minute,
		ModelsRefresh: 5 * time.Second,
		MaxBodyBytes:  lp.MaxInferenceRequestSize,
		Logger:        zerolog.Nop(),
	}
}

// ErrKeyRequired is returned for a non-loopback listen address without an
// API key.
var ErrKeyRequired = errors.New("gateway: listening beyond loopback requires an API key (--api-key or LLOOM_GATEWAY_API_KEY)")

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if err := c.Client.Validate(); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: want HOST:PORT, e.g. 127.0.0.1:8000", c.Listen)
	}
	if c.APIKey == "" && !loopback(host) {
		return fmt.Errorf("%w: %s is not a loopback address", ErrKeyRequired, c.Listen)
	}
	if c.MaxConcurrent <= 0 {
		return fmt.Errorf("max concurrent requests %d must be positive", c.MaxConcurrent)
	}
	if c.Timeout <= 0 || c.ModelsRefresh <= 0 {
		return fmt.Errorf("timeout and models refresh must be positive")
	}
	for name, v := range map[string]string{"max input price": c.MaxInputPriceWei, "max output price": c.MaxOutputPriceWei, "max fee": c.MaxFeeWei} {
		if err := lp.CheckPrice(v); err != nil {
			return fmt.Errorf("%s %q: want a whole number of wei", name, v)
		}
	}
	return nil
}

// loopback reports whether host names only this machine: "localhost" or a
// loopback IP. An empty host (all interfaces) is not.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
