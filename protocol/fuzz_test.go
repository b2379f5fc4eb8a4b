package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// The seeds come from fuzzSeeds (seeds_test.go), both through f.Add and as
// the committed files under testdata/fuzz, so that plain `go test` runs
// them. Each target must never panic; the invariants are what a validator
// relies on.

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds(f)[f.Name()] {
		f.Add(s.args...)
	}
}

// wantCode fails unless err is nil or carries one of the codes.
func wantCode(t *testing.T, what string, err error, codes ...int32) {
	t.Helper()
	if err == nil {
		return
	}
	c := code(err)
	for _, w := range codes {
		if c == w {
			return
		}
	}
	t.Fatalf("%s: error %v has code %d, want one of %v", what, err, c, codes)
}

func FuzzReadFrame(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, max := range []int{0, 16, protocol.MaxRequestSize} {
			br := bytes.NewReader(data)
			got, err := protocol.ReadFrame(br, max)
			other, otherErr := protocol.ReadFrame(plainReader{bytes.NewReader(data)}, max)
			if (err == nil) != (otherErr == nil) || !bytes.Equal(got, other) {
				t.Fatalf("max %d: a byte reader gives (%x, %v), a plain stream (%x, %v)", max, got, err, other, otherErr)
			}
			if err != nil {
				if !errors.Is(err, protocol.ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("max %d: error %v is neither malformed nor a short stream", max, err)
				}
				continue
			}
			if len(got) > max {
				t.Fatalf("max %d: ReadFrame returned %d bytes", max, len(got))
			}
			// The frame is the bytes just before where reading stopped.
			end := len(data) - br.Len()
			if end < len(got) || !bytes.Equal(data[end-len(got):end], got) {
				t.Fatalf("max %d: frame %x is not the input's body", max, got)
			}
			var q pb.QueryRequest
			if err := protocol.ReadMessage(bytes.NewReader(data), max, &q); err != nil {
				wantCode(t, "ReadMessage", err, codeMalformed)
			}
		}
	})
}

// checkAnnouncementEnvelope holds what a validator relies on for any bytes
// that claim to be an announcement envelope.
func checkAnnouncementEnvelope(t *testing.T, raw []byte) {
	d, derr := protocol.DecodeAnnouncement(raw)
	o, oerr := protocol.OpenAnnouncement(raw)
	wantCode(t, "DecodeAnnouncement", derr, codeMalformed, codeSignature, codeVersion, codeModelLimit)
	wantCode(t, "OpenAnnouncement", oerr, codeMalformed, codeSignature, codeVersion, codeModelLimit)
	if derr != nil {
		if oerr == nil || code(oerr) != code(derr) {
			t.Fatalf("Decode refused (%v) but Open gave %v", derr, oerr)
		}
		return
	}
	if err := protocol.CheckAnnouncement(d.Announcement); err != nil {
		t.Fatalf("Decode accepted an announcement that CheckAnnouncement refuses: %v", err)
	}
	if !bytes.Equal([]byte(d.Signer), d.Announcement.GetExecutorId()) {
		t.Fatalf("Decode accepted signer %s for executor_id %x", d.Signer, d.Announcement.GetExecutorId())
	}
	if !bytes.Equal(d.Raw, raw) {
		t.Fatalf("Raw is not the input")
	}
	if _, err := protocol.DecodeHeartbeat(raw); err == nil {
		t.Fatalf("the same bytes decode as an announcement and as a heartbeat")
	}
	if oerr != nil {
		if !errors.Is(oerr, protocol.ErrInvalidSignature) {
			t.Fatalf("Decode accepted, Open refused with %v, want only a signature failure", oerr)
		}
		return
	}
	if o.Signer() != d.Signer || !proto.Equal(o.Announcement(), d.Announcement) {
		t.Fatalf("Open and Decode disagree: %v / %v", o.Announcement(), d.Announcement)
	}
	if _, rec, err := record.ConsumeEnvelope(raw, protocol.AnnouncementDomain); err != nil {
		t.Fatalf("Open accepted an envelope go-libp2p refuses: %v", err)
	} else if ar, ok := rec.(*protocol.AnnouncementRecord); !ok || !proto.Equal(&ar.Announcement, o.Announcement()) {
		t.Fatalf("go-libp2p decoded %T differently", rec)
	}
}

func checkHeartbeatEnvelope(t *testing.T, raw []byte) {
	d, derr := protocol.DecodeHeartbeat(raw)
	o, oerr := protocol.OpenHeartbeat(raw)
	wantCode(t, "DecodeHeartbeat", derr, codeMalformed, codeSignature, codeModelLimit)
	wantCode(t, "OpenHeartbeat", oerr, codeMalformed, codeSignature, codeModelLimit)
	if derr != nil {
		if oerr == nil || code(oerr) != code(derr) {
			t.Fatalf("Decode refused (%v) but Open gave %v", derr, oerr)
		}
		return
	}
	if err := protocol.CheckHeartbeat(d.Heartbeat); err != nil {
		t.Fatalf("Decode accepted a heartbeat that CheckHeartbeat refuses: %v", err)
	}
	if !bytes.Equal([]byte(d.Signer), d.Heartbeat.GetExecutorId()) {
		t.Fatalf("Decode accepted signer %s for executor_id %x", d.Signer, d.Heartbeat.GetExecutorId())
	}
	if oerr != nil {
		if !errors.Is(oerr, protocol.ErrInvalidSignature) {
			t.Fatalf("Decode accepted, Open refused with %v, want only a signature failure", oerr)
		}
		return
	}
	if o.Signer() != d.Signer || !proto.Equal(o.Heartbeat(), d.Heartbeat) {
		t.Fatalf("Open and Decode disagree: %v / %v", o.Heartbeat(), d.Heartbeat)
	}
}

func FuzzDecodeAnnouncement(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkAnnouncementEnvelope(t, raw)
		checkHeartbeatEnvelope(t, raw)
	})
}

func FuzzDecodeHeartbeat(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkHeartbeatEnvelope(t, raw)
		checkAnnouncementEnvelope(t, raw)
	})
}

func FuzzGossipMessage(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pb.GossipMessage
		if err := proto.Unmarshal(data, &m); err != nil {
			return
		}
		switch p := m.GetPayload().(type) {
		case *pb.GossipMessage_AnnouncementEnvelope:
			checkAnnouncementEnvelope(t, p.AnnouncementEnvelope)
		case *pb.GossipMessage_HeartbeatEnvelope:
			checkHeartbeatEnvelope(t, p.HeartbeatEnvelope)
		}
	})
}

// FuzzSignedPayload signs whatever payload it is given, so that the checks
// behind the signature (decoding, limits) see arbitrary input too: a
// validly signed envelope opens exactly when it fits the size limit, its
// payload decodes, names the signer and passes the field checks, and
// otherwise fails with the code of the first of these that fails.
func FuzzSignedPayload(f *testing.F) {
	addSeeds(f)
	key, id := testKey(f, 1)
	expect := func(raw []byte, unmarshalErr error, executorID []byte, check func() error) int32 {
		switch {
		case len(raw) > protocol.MaxGossipMessageSize, unmarshalErr != nil:
			return codeMalformed
		case !bytes.Equal(executorID, []byte(id)):
			return codeSignature
		}
		return code(check())
	}
	f.Fuzz(func(t *testing.T, payload []byte, heartbeat bool) {
		if heartbeat {
			raw := sealForeign(t, &foreignRecord{protocol.HeartbeatDomain, protocol.HeartbeatPayloadType, payload}, key)
			var h pb.Heartbeat
			uerr := proto.Unmarshal(payload, &h)
			want := expect(raw, uerr, h.GetExecutorId(), func() error { return protocol.CheckHeartbeat(&h) })
			s, err := protocol.OpenHeartbeat(raw)
			if code(err) != want {
				t.Fatalf("signed heartbeat payload: Open gives %v, want code %d", err, want)
			}
			if err == nil && !proto.Equal(s.Heartbeat(), &h) {
				t.Fatalf("Open decoded %v, payload is %v", s.Heartbeat(), &h)
			}
			checkHeartbeatEnvelope(t, raw)
			return
		}
		raw := sealForeign(t, &foreignRecord{protocol.AnnouncementDomain, protocol.AnnouncementPayloadType, payload}, key)
		var a pb.Announcement
		uerr := proto.Unmarshal(payload, &a)
		want := expect(raw, uerr, a.GetExecutorId(), func() error { return protocol.CheckAnnouncement(&a) })
		s, err := protocol.OpenAnnouncement(raw)
		if code(err) != want {
			t.Fatalf("signed announcement payload: Open gives %v, want code %d", err, want)
		}
		if err == nil && !proto.Equal(s.Announcement(), &a) {
			t.Fatalf("Open decoded %v, payload is %v", s.Announcement(), &a)
		}
		checkAnnouncementEnvelope(t, raw)
	})
}

func FuzzCheckQuery(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var q pb.QueryRequest
		if err := proto.Unmarshal(data, &q); err != nil {
			return
		}
		limit, err := protocol.CheckQuery(&q)
		if err != nil {
			wantCode(t, "CheckQuery", err, codeMalformed, codeUnsupported)
			if q.GetQuery() == nil && q.GetLimit() <= protocol.MaxQueryLimit && code(err) != codeUnsupported && !filtersBad(q.GetFilters()) {
				t.Fatalf("a request with no query gave %v, want 3003", err)
			}
			return
		}
		if q.GetQuery() == nil {
			t.Fatalf("CheckQuery accepted a request with no query")
		}
		want := int(q.GetLimit())
		if want == 0 {
			want = protocol.DefaultQueryLimit
		}
		if limit != want || limit < 1 || limit > protocol.MaxQueryLimit {
			t.Fatalf("limit %d gave effective limit %d, want %d", q.GetLimit(), limit, want)
		}
	})
}

// filtersBad reports whether CheckQuery refuses f on its own.
func filtersBad(f *pb.QueryFilters) bool {
	probe := &pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}, Filters: f}
	_, err := protocol.CheckQuery(probe)
	return err != nil
}
