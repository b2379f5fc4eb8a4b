package protocol_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Contract error codes, as a user sees them in a response or a log line.
const (
	codeOK          int32 = 0
	codeSignature   int32 = 1001
	codeExpired     int32 = 1003
	codeModelLimit  int32 = 2005
	codeVersion     int32 = 3001
	codeMalformed   int32 = 3002
	codeUnsupported int32 = 3003
)

func models(n int) []*pb.ModelDescriptor {
	ms := make([]*pb.ModelDescriptor, n)
	for i := range ms {
		ms[i] = validModel(fmt.Sprintf("model-%d", i))
	}
	return ms
}

func strs(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", s, i)
	}
	return out
}

func meta(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestCheckAnnouncement(t *testing.T) {
	_, id := testKey(t, 1)
	for _, tc := range []struct {
		name string
		edit func(a *pb.Announcement)
		want int32
	}{
		{"valid", func(*pb.Announcement) {}, codeOK},
		{"protocol_version 0", func(a *pb.Announcement) { a.ProtocolVersion = 0 }, codeMalformed},
		{"protocol_version 2", func(a *pb.Announcement) { a.ProtocolVersion = 2 }, codeVersion},
		{"protocol_version 2 outranks other faults", func(a *pb.Announcement) { a.ProtocolVersion = 2; a.Seq = 0 }, codeVersion},
		{"no executor_id", func(a *pb.Announcement) { a.ExecutorId = nil }, codeMalformed},
		{"executor_id as base58 text", func(a *pb.Announcement) { a.ExecutorId = []byte(id.String()) }, codeMalformed},
		{"seq 0", func(a *pb.Announcement) { a.Seq = 0 }, codeMalformed},
		{"seq 1", func(a *pb.Announcement) { a.Seq = 1 }, codeOK},
		{"issued_at_ms 0", func(a *pb.Announcement) { a.IssuedAtMs = 0 }, codeMalformed},
		{"issued_at_ms negative", func(a *pb.Announcement) { a.IssuedAtMs = -1 }, codeMalformed},
		{"kind unspecified", func(a *pb.Announcement) { a.Kind = pb.AnnouncementKind_ANNOUNCEMENT_KIND_UNSPECIFIED }, codeMalformed},
		{"kind unknown (4)", func(a *pb.Announcement) { a.Kind = 4 }, codeMalformed},
		{"UPDATE", func(a *pb.Announcement) { a.Kind = pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE }, codeOK},
		{"INITIAL with no models", func(a *pb.Announcement) { a.Models = nil }, codeOK},
		{"REMOVAL with no models", func(a *pb.Announcement) { a.Kind = pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL; a.Models = nil }, codeOK},
		{"REMOVAL with models", func(a *pb.Announcement) { a.Kind = pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL }, codeMalformed},
		{"64 models", func(a *pb.Announcement) { a.Models = models(64) }, codeOK},
		{"65 models", func(a *pb.Announcement) { a.Models = models(65) }, codeModelLimit},
		{"duplicate model id", func(a *pb.Announcement) { a.Models = []*pb.ModelDescriptor{validModel("m"), validModel("m")} }, codeMalformed},
		{"nil model", func(a *pb.Announcement) { a.Models = []*pb.ModelDescriptor{nil} }, codeMalformed},
		{"bad model descriptor", func(a *pb.Announcement) { a.Models[1].ModelId = "" }, codeMalformed},
		{"no addrs", func(a *pb.Announcement) { a.Addrs = nil }, codeOK},
		{"32 addrs", func(a *pb.Announcement) { a.Addrs = addrs(t, 32) }, codeOK},
		{"33 addrs", func(a *pb.Announcement) { a.Addrs = addrs(t, 33) }, codeMalformed},
		{"addr bytes that are not a multiaddr", func(a *pb.Announcement) { a.Addrs = [][]byte{{0xff, 0xff, 0xff}} }, codeMalformed},
		{"empty addr", func(a *pb.Announcement) { a.Addrs = [][]byte{{}} }, codeMalformed},
		{"addr as text", func(a *pb.Announcement) { a.Addrs = [][]byte{[]byte("/ip4/127.0.0.1/tcp/4001")} }, codeMalformed},
		{"addr of 257 bytes", func(a *pb.Announcement) { a.Addrs = [][]byte{longAddr(t, 257)} }, codeMalformed},
		{"addr of 256 bytes", func(a *pb.Announcement) { a.Addrs = [][]byte{longAddr(t, 256)} }, codeOK},
		{"no evm address", func(a *pb.Announcement) { a.EvmAddress = "" }, codeOK},
		{"evm address lowercase", func(a *pb.Announcement) { a.EvmAddress = strings.ToLower(testEVMAddress) }, codeOK},
		{"evm address 0X prefix", func(a *pb.Announcement) { a.EvmAddress = "0X" + testEVMAddress[2:] }, codeOK},
		{"evm address without 0x", func(a *pb.Announcement) { a.EvmAddress = testEVMAddress[2:] }, codeMalformed},
		{"evm address 39 hex digits", func(a *pb.Announcement) { a.EvmAddress = testEVMAddress[:41] }, codeMalformed},
		{"evm address 41 hex digits", func(a *pb.Announcement) { a.EvmAddress = testEVMAddress + "0" }, codeMalformed},
		{"evm address non-hex digit", func(a *pb.Announcement) { a.EvmAddress = testEVMAddress[:41] + "g" }, codeMalformed},
		{"evm address 1x prefix", func(a *pb.Announcement) { a.EvmAddress = "1x" + testEVMAddress[2:] }, codeMalformed},
		{"agent_version 64 bytes", func(a *pb.Announcement) { a.AgentVersion = strings.Repeat("v", 64) }, codeOK},
		{"agent_version 65 bytes", func(a *pb.Announcement) { a.AgentVersion = strings.Repeat("v", 65) }, codeMalformed},
	} {
		a := validAnnouncement(t, id)
		tc.edit(a)
		err := protocol.CheckAnnouncement(a)
		if got := code(err); got != tc.want {
			t.Errorf("%s: CheckAnnouncement gives code %d (%v), want %d", tc.name, got, err, tc.want)
		}
	}
}

func addrs(t *testing.T, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = addrBytes(t, fmt.Sprintf("/ip4/10.0.0.1/tcp/%d", 4000+i))
	}
	return out
}

// longAddr returns a valid binary multiaddr of exactly n bytes: /dns/<name>/tcp/1.
func longAddr(t *testing.T, n int) []byte {
	base := len(addrBytes(t, "/dns/a/tcp/1")) - 1
	for name := strings.Repeat("a", n-base-1); len(name) > 0; name = name[1:] {
		if b := addrBytes(t, "/dns/"+name+"/tcp/1"); len(b) == n {
			return b
		}
	}
	t.Fatalf("no /dns multiaddr of %d bytes", n)
	return nil
}

func TestCheckModelDescriptor(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *pb.ModelDescriptor)
		want int32
	}{
		{"valid", func(*pb.ModelDescriptor) {}, codeOK},
		{"only a model id", func(m *pb.ModelDescriptor) { *m = pb.ModelDescriptor{ModelId: "m"} }, codeOK},
		{"model id of 128 bytes", func(m *pb.ModelDescriptor) { m.ModelId = strings.Repeat("a", 128) }, codeOK},
		{"model id of 129 bytes", func(m *pb.ModelDescriptor) { m.ModelId = strings.Repeat("a", 129) }, codeMalformed},
		{"empty model id", func(m *pb.ModelDescriptor) { m.ModelId = "" }, codeMalformed},
		{"model id with every allowed symbol", func(m *pb.ModelDescriptor) { m.ModelId = "hf.co/org_x/Model-1:Q4@main" }, codeOK},
		{"model id with a space", func(m *pb.ModelDescriptor) { m.ModelId = "llama 3" }, codeMalformed},
		{"backend_type 64 bytes", func(m *pb.ModelDescriptor) { m.BackendType = strings.Repeat("b", 64) }, codeOK},
		{"backend_type 65 bytes", func(m *pb.ModelDescriptor) { m.BackendType = strings.Repeat("b", 65) }, codeMalformed},
		{"architecture 64 bytes", func(m *pb.ModelDescriptor) { m.Architecture = strings.Repeat("a", 64) }, codeOK},
		{"architecture 65 bytes", func(m *pb.ModelDescriptor) { m.Architecture = strings.Repeat("a", 65) }, codeMalformed},
		{"model_size 32 bytes", func(m *pb.ModelDescriptor) { m.ModelSize = strings.Repeat("7", 32) }, codeOK},
		{"model_size 33 bytes", func(m *pb.ModelDescriptor) { m.ModelSize = strings.Repeat("7", 33) }, codeMalformed},
		{"quantization 32 bytes", func(m *pb.ModelDescriptor) { m.Quantization = strings.Repeat("q", 32) }, codeOK},
		{"quantization 33 bytes", func(m *pb.ModelDescriptor) { m.Quantization = strings.Repeat("q", 33) }, codeMalformed},
		{"16 features", func(m *pb.ModelDescriptor) { m.Features = strs(16, "f") }, codeOK},
		{"17 features", func(m *pb.ModelDescriptor) { m.Features = strs(17, "f") }, codeMalformed},
		{"feature of 32 bytes", func(m *pb.ModelDescriptor) { m.Features = []string{strings.Repeat("f", 32)} }, codeOK},
		{"feature of 33 bytes", func(m *pb.ModelDescriptor) { m.Features = []string{strings.Repeat("f", 33)} }, codeMalformed},
		{"empty feature", func(m *pb.ModelDescriptor) { m.Features = []string{"chat", ""} }, codeMalformed},
		{"16 metadata entries", func(m *pb.ModelDescriptor) { m.Metadata = meta(16) }, codeOK},
		{"17 metadata entries", func(m *pb.ModelDescriptor) { m.Metadata = meta(17) }, codeMalformed},
		{"metadata key of 64 bytes", func(m *pb.ModelDescriptor) { m.Metadata = map[string]string{strings.Repeat("k", 64): "v"} }, codeOK},
		{"metadata key of 65 bytes", func(m *pb.ModelDescriptor) { m.Metadata = map[string]string{strings.Repeat("k", 65): "v"} }, codeMalformed},
		{"empty metadata key", func(m *pb.ModelDescriptor) { m.Metadata = map[string]string{"": "v"} }, codeMalformed},
		{"metadata value of 256 bytes", func(m *pb.ModelDescriptor) { m.Metadata = map[string]string{"k": strings.Repeat("v", 256)} }, codeOK},
		{"metadata value of 257 bytes", func(m *pb.ModelDescriptor) { m.Metadata = map[string]string{"k": strings.Repeat("v", 257)} }, codeMalformed},
		{"empty metadata value", func(m *pb.ModelDescriptor) { m.Metadata = map[string]string{"k": ""} }, codeOK},
		{"input price of 78 digits", func(m *pb.ModelDescriptor) { m.Pricing.InputTokenPriceWei = strings.Repeat("9", 78) }, codeOK},
		{"input price of 79 digits", func(m *pb.ModelDescriptor) { m.Pricing.InputTokenPriceWei = strings.Repeat("9", 79) }, codeMalformed},
		{"output price not decimal", func(m *pb.ModelDescriptor) { m.Pricing.OutputTokenPriceWei = "0x10" }, codeMalformed},
		{"minimum fee negative", func(m *pb.ModelDescriptor) { m.Pricing.MinimumFeeWei = "-1" }, codeMalformed},
		{"empty prices", func(m *pb.ModelDescriptor) { m.Pricing = &pb.Pricing{} }, codeOK},
		{"tokens_per_second NaN", func(m *pb.ModelDescriptor) { m.Performance.TokensPerSecond = math.NaN() }, codeMalformed},
		{"tokens_per_second +Inf", func(m *pb.ModelDescriptor) { m.Performance.TokensPerSecond = math.Inf(1) }, codeMalformed},
		{"tokens_per_second negative", func(m *pb.ModelDescriptor) { m.Performance.TokensPerSecond = -1 }, codeMalformed},
		{"tokens_per_second 0", func(m *pb.ModelDescriptor) { m.Performance.TokensPerSecond = 0 }, codeOK},
		{"success_rate 1", func(m *pb.ModelDescriptor) { m.Performance.SuccessRate = 1 }, codeOK},
		{"success_rate 0", func(m *pb.ModelDescriptor) { m.Performance.SuccessRate = 0 }, codeOK},
		{"success_rate above 1", func(m *pb.ModelDescriptor) { m.Performance.SuccessRate = 1.0000001 }, codeMalformed},
		{"success_rate negative", func(m *pb.ModelDescriptor) { m.Performance.SuccessRate = -0.1 }, codeMalformed},
		{"success_rate NaN", func(m *pb.ModelDescriptor) { m.Performance.SuccessRate = math.NaN() }, codeMalformed},
	} {
		m := validModel("llama3.2:3b")
		tc.edit(m)
		err := protocol.CheckModelDescriptor(m)
		if got := code(err); got != tc.want {
			t.Errorf("%s: CheckModelDescriptor gives code %d (%v), want %d", tc.name, got, err, tc.want)
		}
	}
	if got := code(protocol.CheckModelDescriptor(nil)); got != codeMalformed {
		t.Errorf("nil descriptor: code %d, want %d", got, codeMalformed)
	}
}

func TestCheckPrice(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want int32
	}{
		{"", codeOK},
		{"0", codeOK},
		{"1000000000000000000", codeOK},
		{strings.Repeat("9", 78), codeOK},
		{strings.Repeat("9", 79), codeMalformed},
		{"1.5", codeMalformed},
		{"1e18", codeMalformed},
		{" 1", codeMalformed},
		{"+1", codeMalformed},
		{"١", codeMalformed}, // Arabic-Indic digit one
	} {
		if got := code(protocol.CheckPrice(tc.v)); got != tc.want {
			t.Errorf("CheckPrice(%q) gives code %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestCheckHeartbeat(t *testing.T) {
	_, id := testKey(t, 2)
	loads := func(n int) *pb.Load {
		l := &pb.Load{}
		for i := range n {
			l.Models = append(l.Models, &pb.ModelLoad{ModelId: fmt.Sprintf("m%d", i)})
		}
		return l
	}
	for _, tc := range []struct {
		name string
		edit func(h *pb.Heartbeat)
		want int32
	}{
		{"valid", func(*pb.Heartbeat) {}, codeOK},
		{"no load", func(h *pb.Heartbeat) { h.Load = nil }, codeOK},
		{"announcement_seq 0", func(h *pb.Heartbeat) { h.AnnouncementSeq = 0 }, codeOK},
		{"no executor_id", func(h *pb.Heartbeat) { h.ExecutorId = nil }, codeMalformed},
		{"executor_id garbage", func(h *pb.Heartbeat) { h.ExecutorId = []byte{1, 2, 3} }, codeMalformed},
		{"seq 0", func(h *pb.Heartbeat) { h.Seq = 0 }, codeMalformed},
		{"issued_at_ms 0", func(h *pb.Heartbeat) { h.IssuedAtMs = 0 }, codeMalformed},
		{"issued_at_ms negative", func(h *pb.Heartbeat) { h.IssuedAtMs = -5 }, codeMalformed},
		{"load for 64 models", func(h *pb.Heartbeat) { h.Load = loads(64) }, codeOK},
		{"load for 65 models", func(h *pb.Heartbeat) { h.Load = loads(65) }, codeModelLimit},
		{"load with an invalid model id", func(h *pb.Heartbeat) { h.Load.Models[0].ModelId = "bad id" }, codeMalformed},
		{"load with an empty model id", func(h *pb.Heartbeat) { h.Load.Models[0].ModelId = "" }, codeMalformed},
	} {
		h := validHeartbeat(id)
		tc.edit(h)
		err := protocol.CheckHeartbeat(h)
		if got := code(err); got != tc.want {
			t.Errorf("%s: CheckHeartbeat gives code %d (%v), want %d", tc.name, got, err, tc.want)
		}
	}
}

func TestCheckFreshness(t *testing.T) {
	const now = testIssuedAtMs
	const removeAfter = 2 * 60 * 1000
	for _, tc := range []struct {
		name     string
		issued   int64
		maxAgeMs int64
		want     int32
	}{
		{"now", now, removeAfter, codeOK},
		{"exactly 2 min ahead", now + protocol.MaxFutureSkewMs, removeAfter, codeOK},
		{"2 min and 1 ms ahead", now + protocol.MaxFutureSkewMs + 1, removeAfter, codeExpired},
		{"an hour ahead", now + 3_600_000, removeAfter, codeExpired},
		{"exactly the max age old", now - removeAfter, removeAfter, codeOK},
		{"max age and 1 ms old", now - removeAfter - 1, removeAfter, codeExpired},
		{"a year old, no age limit", now - 365*24*3_600_000, 0, codeOK},
		{"ahead, no age limit", now + protocol.MaxFutureSkewMs + 1, 0, codeExpired},
	} {
		err := protocol.CheckFreshness(tc.issued, now, tc.maxAgeMs)
		if got := code(err); got != tc.want {
			t.Errorf("%s: CheckFreshness gives code %d (%v), want %d", tc.name, got, err, tc.want)
		}
		if tc.want == codeExpired && !errors.Is(err, protocol.ErrExpired) {
			t.Errorf("%s: %v does not match ErrExpired", tc.name, err)
		}
	}
}

func TestCheckQuery(t *testing.T) {
	_, id := testKey(t, 1)
	list := func() *pb.QueryRequest {
		return &pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}}
	}
	find := func(m string) *pb.QueryRequest {
		return &pb.QueryRequest{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: m}}}
	}
	info := func(ids ...[]byte) *pb.QueryRequest {
		return &pb.QueryRequest{Query: &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: ids}}}
	}
	manyIDs := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = []byte(id)
		}
		return out
	}
	withLimit := func(q *pb.QueryRequest, l uint32) *pb.QueryRequest { q.Limit = l; return q }
	withFilters := func(f *pb.QueryFilters) *pb.QueryRequest { q := list(); q.Filters = f; return q }
	for _, tc := range []struct {
		name      string
		q         *pb.QueryRequest
		wantCode  int32
		wantLimit int
	}{
		{"list models, default limit", list(), codeOK, protocol.DefaultQueryLimit},
		{"statistics", &pb.QueryRequest{Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}}, codeOK, 100},
		{"limit 1", withLimit(list(), 1), codeOK, 1},
		{"limit 1000", withLimit(list(), 1000), codeOK, 1000},
		{"limit 1001", withLimit(list(), 1001), codeMalformed, 0},
		{"offset past everything", &pb.QueryRequest{Query: list().Query, Offset: 1 << 31}, codeOK, 100},
		{"find model", find("llama3.2:3b"), codeOK, 100},
		{"find model of 128 bytes", find(strings.Repeat("m", 128)), codeOK, 100},
		{"find model of 129 bytes", find(strings.Repeat("m", 129)), codeMalformed, 0},
		{"find model with empty id", find(""), codeMalformed, 0},
		{"find model with nil body", &pb.QueryRequest{Query: &pb.QueryRequest_FindModel{}}, codeMalformed, 0},
		{"executor info, one id", info([]byte(id)), codeOK, 100},
		{"executor info, 1000 ids", info(manyIDs(1000)...), codeOK, 100},
		{"executor info, 1001 ids", info(manyIDs(1001)...), codeMalformed, 0},
		{"executor info, 0 ids", info(), codeMalformed, 0},
		{"executor info, id as text", info([]byte(id.String())), codeMalformed, 0},
		{"no query", &pb.QueryRequest{QueryId: 1}, codeUnsupported, 0},
		{"no query but a bad limit", &pb.QueryRequest{Limit: 5000}, codeMalformed, 0},
		{"backend filter of 64 bytes", withFilters(&pb.QueryFilters{BackendType: strings.Repeat("b", 64)}), codeOK, 100},
		{"backend filter of 65 bytes", withFilters(&pb.QueryFilters{BackendType: strings.Repeat("b", 65)}), codeMalformed, 0},
		{"16 required features", withFilters(&pb.QueryFilters{RequiredFeatures: strs(16, "f")}), codeOK, 100},
		{"17 required features", withFilters(&pb.QueryFilters{RequiredFeatures: strs(17, "f")}), codeMalformed, 0},
		{"max input price of 78 digits", withFilters(&pb.QueryFilters{MaxInputPriceWei: strings.Repeat("1", 78)}), codeOK, 100},
		{"max input price of 79 digits", withFilters(&pb.QueryFilters{MaxInputPriceWei: strings.Repeat("1", 79)}), codeMalformed, 0},
		{"max output price not decimal", withFilters(&pb.QueryFilters{MaxOutputPriceWei: "cheap"}), codeMalformed, 0},
		{"every filter", withFilters(&pb.QueryFilters{BackendType: "vllm", MinContextLength: 4096, RequiredFeatures: []string{"chat"}, MaxInputPriceWei: "10", MaxOutputPriceWei: "20", IncludeStale: true, IncludeUnavailable: true}), codeOK, 100},
	} {
		limit, err := protocol.CheckQuery(tc.q)
		if got := code(err); got != tc.wantCode {
			t.Errorf("%s: CheckQuery gives code %d (%v), want %d", tc.name, got, err, tc.wantCode)
		}
		if err == nil && limit != tc.wantLimit {
			t.Errorf("%s: effective limit %d, want %d", tc.name, limit, tc.wantLimit)
		}
	}
}

// Every code the package produces on its own appears above; this table
// keeps the list honest against the sentinels.
func TestCodesProducedMatchSentinels(t *testing.T) {
	for _, tc := range []struct {
		code     int32
		sentinel error
	}{
		{codeSignature, protocol.ErrInvalidSignature},
		{codeExpired, protocol.ErrExpired},
		{codeModelLimit, protocol.ErrModelLimitExceeded},
		{codeVersion, protocol.ErrUnsupportedVersion},
		{codeMalformed, protocol.ErrMalformed},
		{codeUnsupported, protocol.ErrUnsupportedQuery},
	} {
		if got := code(tc.sentinel); got != tc.code {
			t.Errorf("sentinel %v has code %d, want %d", tc.sentinel, got, tc.code)
		}
	}
}
