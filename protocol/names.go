package protocol

import (
	"fmt"
	"regexp"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/lloom/lloom/protocol/pb"
)

// Version is the protocol_version this implementation speaks.
const Version uint32 = 1

// Stream protocols.
const (
	QueryProtocol        protocol.ID = "/lloom/query/1.0.0"
	AnnouncementProtocol protocol.ID = "/lloom/announcement/1.0.0"
	InferenceProtocol    protocol.ID = "/lloom/inference/1.0.0"
	// WatchProtocol is the change feed (client -> validator): one
	// WatchRequest, then WatchEvent frames for as long as the client reads.
	WatchProtocol protocol.ID = "/lloom/watch/1.0.0"
)

// Envelope domains and payload types.
const (
	AnnouncementDomain = "lloom-announcement"
	HeartbeatDomain    = "lloom-heartbeat"
)

var (
	AnnouncementPayloadType = []byte("/lloom/announcement/1")
	HeartbeatPayloadType    = []byte("/lloom/heartbeat/1")
)

// DefaultNetwork is the network name used when none is given.
const DefaultNetwork = "lloom"

// Size limits, in bytes.
const (
	MaxRequestSize       = 64 << 10 // a stream request frame
	MaxResponseSize      = 4 << 20  // a stream response frame
	MaxGossipMessageSize = 64 << 10 // a GossipSub message's data
	MaxWatchEventSize    = 64 << 10 // one frame of the change feed
)

// Message limits.
const (
	MaxModels            = 64  // models per executor
	MaxModelIDLen        = 128 // bytes
	MaxBackendTypeLen    = 64
	MaxFeatures          = 16
	MaxFeatureLen        = 32
	MaxMetadata          = 16
	MaxMetadataKeyLen    = 64
	MaxMetadataValueLen  = 256
	MaxShortStringLen    = 64 // architecture, agent version
	MaxTinyStringLen     = 32 // model size, quantization
	MaxPriceLen          = 78 // decimal digits of a uint256
	MaxAddrs             = 32
	MaxAddrLen           = 256
	MaxQueryPeerIDs      = 1000
	DefaultQueryLimit    = 100
	MaxQueryLimit        = 1000
	MaxFutureSkewMs      = 2 * 60 * 1000 // issued_at_ms may be this far ahead
	MaxNetworkNameLength = 64
)

var (
	networkRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// Topic returns the GossipSub topic of a network.
func Topic(network string) string {
	return "lloom/" + network + "/announcements/1"
}

// CheckNetworkName reports whether name can be used as a network name.
func CheckNetworkName(name string) error {
	if !networkRe.MatchString(name) {
		return fmt.Errorf("network name %q: want 1-64 characters of [A-Za-z0-9._-]", name)
	}
	return nil
}

// ValidModelID reports whether id is a well-formed model id.
func ValidModelID(id string) bool { return validModelID(id) }

// KindName is the lowercase word for an announcement kind, as logs and the
// CLI print it.
func KindName(k pb.AnnouncementKind) string {
	switch k {
	case pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL:
		return "initial"
	case pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE:
		return "update"
	case pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL:
		return "removal"
	}
	return k.String()
}

// StatusName is the lowercase word for an executor status, as the CLI's
// JSON uses it.
func StatusName(s pb.ExecutorStatus) string {
	switch s {
	case pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY:
		return "healthy"
	case pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED:
		return "overloaded"
	case pb.ExecutorStatus_EXECUTOR_STATUS_STALE:
		return "stale"
	}
	return "unknown"
}

// WatchKindName is the lowercase word for a change feed event kind, as the
// CLI and the validator's HTTP API print it.
func WatchKindName(k pb.WatchEventKind) string {
	switch k {
	case pb.WatchEventKind_WATCH_EVENT_KIND_SNAPSHOT:
		return "snapshot"
	case pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED:
		return "synced"
	case pb.WatchEventKind_WATCH_EVENT_KIND_ADDED:
		return "added"
	case pb.WatchEventKind_WATCH_EVENT_KIND_UPDATED:
		return "updated"
	case pb.WatchEventKind_WATCH_EVENT_KIND_LOAD:
		return "load"
	case pb.WatchEventKind_WATCH_EVENT_KIND_STALE:
		return "stale"
	case pb.WatchEventKind_WATCH_EVENT_KIND_RECOVERED:
		return "recovered"
	case pb.WatchEventKind_WATCH_EVENT_KIND_REMOVED:
		return "removed"
	case pb.WatchEventKind_WATCH_EVENT_KIND_ERROR:
		return "error"
	}
	return "unknown"
}
