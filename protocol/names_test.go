package protocol_test

import (
	"strings"
	"testing"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct{ name, got, want string }{
		{"topic of the default network", protocol.Topic(protocol.DefaultNetwork), "lloom/lloom/announcements/1"},
		{"topic of a test network", protocol.Topic("testnet-2"), "lloom/testnet-2/announcements/1"},
		{"query protocol", string(protocol.QueryProtocol), "/lloom/query/1.0.0"},
		{"announcement pull protocol", string(protocol.AnnouncementProtocol), "/lloom/announcement/1.0.0"},
		{"inference protocol", string(protocol.InferenceProtocol), "/lloom/inference/1.0.0"},
		{"announcement domain", protocol.AnnouncementDomain, "lloom-announcement"},
		{"heartbeat domain", protocol.HeartbeatDomain, "lloom-heartbeat"},
		{"announcement payload type", string(protocol.AnnouncementPayloadType), "/lloom/announcement/1"},
		{"heartbeat payload type", string(protocol.HeartbeatPayloadType), "/lloom/heartbeat/1"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s is %q, want %q (other implementations rely on it)", tc.name, tc.got, tc.want)
		}
	}
	if protocol.Version != 1 {
		t.Errorf("protocol version %d, want 1", protocol.Version)
	}
}

func TestCheckNetworkName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"lloom", true},
		{"a", true},
		{"Test.net_2-b", true},
		{strings.Repeat("n", 64), true},
		{strings.Repeat("n", 65), false},
		{"", false},
		{"with/slash", false}, // would change the topic's shape
		{"with space", false},
		{"colon:x", false},
		{"ünïcode", false},
	} {
		err := protocol.CheckNetworkName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckNetworkName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "network name") {
			t.Errorf("CheckNetworkName(%q) error %q does not say which input is wrong", tc.name, err)
		}
	}
}

func TestValidModelID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"llama3.2:3b", true},
		{"hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M", true},
		{"user@host", true},
		{"a", true},
		{strings.Repeat("m", 128), true},
		{strings.Repeat("m", 129), false},
		{"", false},
		{"llama 3", false},
		{"tab\tid", false},
		{"new\nline", false},
		{"qwen2.5+coder", false},
		{"modèle", false},
		{"llama3\x00", false},
	} {
		if got := protocol.ValidModelID(tc.id); got != tc.ok {
			t.Errorf("ValidModelID(%q) = %v, want %v", tc.id, got, tc.ok)
		}
	}
}

// The CLI's JSON and the logs use these words; scripts match on them.
func TestEnumWords(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{protocol.KindName(pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL), "initial"},
		{protocol.KindName(pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE), "update"},
		{protocol.KindName(pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL), "removal"},
		{protocol.StatusName(pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY), "healthy"},
		{protocol.StatusName(pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED), "overloaded"},
		{protocol.StatusName(pb.ExecutorStatus_EXECUTOR_STATUS_STALE), "stale"},
		{protocol.StatusName(pb.ExecutorStatus_EXECUTOR_STATUS_UNSPECIFIED), "unknown"},
	} {
		if tc.got != tc.want {
			t.Errorf("enum word %q, want %q", tc.got, tc.want)
		}
	}
	if w := protocol.KindName(pb.AnnouncementKind(9)); w == "" || w == "initial" || w == "update" || w == "removal" {
		t.Errorf("an unknown kind prints as %q, want something that is not a known kind", w)
	}
}
