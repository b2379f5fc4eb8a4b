package protocol_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// plainReader hides bytes.Reader's ReadByte, so ReadFrame takes the path a
// libp2p stream takes.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// prefixOnly serves a length prefix and fails the test if anything after it
// is read: a frame over the limit must be refused on its prefix alone.
type prefixOnly struct {
	t      *testing.T
	prefix []byte
}

func (p *prefixOnly) Read(b []byte) (int, error) {
	if len(p.prefix) == 0 {
		p.t.Errorf("ReadFrame read the body of a frame whose length prefix is over the limit")
		return 0, errors.New("body must not be read")
	}
	n := copy(b, p.prefix)
	p.prefix = p.prefix[n:]
	return n, nil
}

// failing returns err on every read.
type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }

func frame(body []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		max  int
	}{
		{"empty frame", 0, protocol.MaxRequestSize},
		{"one byte", 1, protocol.MaxRequestSize},
		{"127 bytes, one-byte prefix", 127, protocol.MaxRequestSize},
		{"128 bytes, two-byte prefix", 128, protocol.MaxRequestSize},
		{"exactly the request limit", protocol.MaxRequestSize, protocol.MaxRequestSize},
		{"exactly the response limit", protocol.MaxResponseSize, protocol.MaxResponseSize},
	} {
		body := bytes.Repeat([]byte{0xa5}, tc.size)
		var buf bytes.Buffer
		if err := protocol.WriteFrame(&buf, body); err != nil {
			t.Fatalf("%s: WriteFrame: %v", tc.name, err)
		}
		if !bytes.Equal(buf.Bytes(), frame(body)) {
			t.Errorf("%s: WriteFrame wrote %d bytes, want a uvarint length and the body (%d bytes)", tc.name, buf.Len(), len(frame(body)))
		}
		for _, rd := range []struct {
			name string
			r    io.Reader
		}{
			{"byte reader", bytes.NewReader(buf.Bytes())},
			{"plain reader", plainReader{bytes.NewReader(buf.Bytes())}},
		} {
			got, err := protocol.ReadFrame(rd.r, tc.max)
			if err != nil {
				t.Errorf("%s (%s): a peer sending a %d-byte frame under a %d-byte limit is refused: %v", tc.name, rd.name, tc.size, tc.max, err)
				continue
			}
			if !bytes.Equal(got, body) {
				t.Errorf("%s (%s): ReadFrame returned %d bytes, want the %d sent", tc.name, rd.name, len(got), len(body))
			}
		}
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []proto.Message{
		&pb.QueryRequest{},
		&pb.QueryRequest{QueryId: 9, Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: "llama3.2:3b"}}, Limit: 10, Offset: 20},
		&pb.QueryResponse{QueryId: 9, TotalCount: 1, ErrorCode: pb.ErrorCode_ERROR_CODE_RATE_LIMITED, ErrorMessage: "slow down"},
	} {
		var buf bytes.Buffer
		if err := protocol.WriteMessage(&buf, m); err != nil {
			t.Fatalf("WriteMessage(%v): %v", m, err)
		}
		got := m.ProtoReflect().New().Interface()
		if err := protocol.ReadMessage(plainReader{&buf}, protocol.MaxRequestSize, got); err != nil {
			t.Fatalf("ReadMessage(%T): %v", m, err)
		}
		if !proto.Equal(got, m) {
			t.Errorf("message %T came back as %v, want %v", m, got, m)
		}
		if buf.Len() != 0 {
			t.Errorf("%T: %d bytes left unread after one message", m, buf.Len())
		}
	}
}

func TestReadFrameRefusesOversizedPrefixBeforeBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    uint64
		max  int
	}{
		{"one over the request limit", protocol.MaxRequestSize + 1, protocol.MaxRequestSize},
		{"one over the response limit", protocol.MaxResponseSize + 1, protocol.MaxResponseSize},
		{"one over a zero limit", 1, 0},
		{"largest uvarint", 1<<64 - 1, protocol.MaxResponseSize},
	} {
		r := &prefixOnly{t: t, prefix: binary.AppendUvarint(nil, tc.n)}
		got, err := protocol.ReadFrame(r, tc.max)
		if !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%s: a %d-byte frame under a %d-byte limit gave (%d bytes, %v), want an error matching ErrMalformed", tc.name, tc.n, tc.max, len(got), err)
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	overflow := append(bytes.Repeat([]byte{0xff}, 10), 0x01) // 11 continuation bytes
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty stream", nil, io.ErrUnexpectedEOF},
		{"truncated prefix", []byte{0x80}, io.ErrUnexpectedEOF},
		{"truncated two-byte prefix", []byte{0xff, 0xff}, io.ErrUnexpectedEOF},
		{"truncated body", frame([]byte("hello"))[:4], io.ErrUnexpectedEOF},
		{"body missing", binary.AppendUvarint(nil, 10), io.ErrUnexpectedEOF},
		{"prefix overflows 64 bits", overflow, protocol.ErrMalformed},
	} {
		for _, rd := range []struct {
			name string
			r    io.Reader
		}{
			{"byte reader", bytes.NewReader(tc.input)},
			{"plain reader", plainReader{bytes.NewReader(tc.input)}},
		} {
			_, err := protocol.ReadFrame(rd.r, protocol.MaxRequestSize)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s (%s): ReadFrame error %v, want one matching %v", tc.name, rd.name, err, tc.want)
			}
		}
	}
}

// An I/O failure is passed on as it is: a reset stream is not a malformed
// message, and a deadline is a timeout (4002), so that a user is told what
// actually happened.
func TestReadFrameIOErrors(t *testing.T) {
	reset := errors.New("stream reset")
	for _, tc := range []struct {
		name     string
		r        io.Reader
		want     error
		wantCode pb.ErrorCode
	}{
		{"deadline in the prefix", failing{os.ErrDeadlineExceeded}, os.ErrDeadlineExceeded, pb.ErrorCode_ERROR_CODE_TIMEOUT},
		{"deadline in the body", io.MultiReader(bytes.NewReader([]byte{5, 'a'}), failing{os.ErrDeadlineExceeded}), os.ErrDeadlineExceeded, pb.ErrorCode_ERROR_CODE_TIMEOUT},
		{"reset in the prefix", failing{reset}, reset, pb.ErrorCode_ERROR_CODE_INTERNAL},
		{"reset in the prefix after a byte", io.MultiReader(bytes.NewReader([]byte{0x80}), failing{reset}), reset, pb.ErrorCode_ERROR_CODE_INTERNAL},
		{"reset in the body", io.MultiReader(bytes.NewReader([]byte{5, 'a'}), failing{reset}), reset, pb.ErrorCode_ERROR_CODE_INTERNAL},
	} {
		_, err := protocol.ReadFrame(tc.r, protocol.MaxRequestSize)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: ReadFrame error %v, want one wrapping %v", tc.name, err, tc.want)
		}
		if got := protocol.CodeOf(err); got != tc.wantCode {
			t.Errorf("%s: ReadFrame error %v has code %v, want %v", tc.name, err, got, tc.wantCode)
		}
	}
}

func TestReadMessageGarbage(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"truncated field", []byte{0x0a, 0x05, 'a'}},                   // field 1, length 5, one byte
		{"invalid wire type", []byte{0x0f}},                            // field 1, wire type 7
		{"invalid UTF-8 string", []byte{0x1a, 0x03, 0x0a, 0x01, 0xff}}, // find_model { model_id: "\xff" }
	} {
		body := tc.body
		var q pb.QueryRequest
		err := protocol.ReadMessage(bytes.NewReader(frame(body)), protocol.MaxRequestSize, &q)
		if !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%s: ReadMessage error %v, want one matching ErrMalformed (3002)", tc.name, err)
		}
	}
}
