package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// Streams carry one request and one response, each an unsigned-varint length
// prefix followed by that many bytes of protobuf.

// WriteFrame writes b as one length-prefixed frame.
func WriteFrame(w io.Writer, b []byte) error {
	buf := make([]byte, 0, binary.MaxVarintLen64+len(b))
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	buf = append(buf, b...)
	_, err := w.Write(buf)
	return err
}

// WriteMessage marshals m and writes it as one frame.
func WriteMessage(w io.Writer, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("protocol: marshal %T: %w", m, err)
	}
	return WriteFrame(w, b)
}

// ReadFrame reads one frame of at most max bytes. A length prefix over max is
// refused before any of the body is read, with an error matching
// ErrMalformed. A stream that ends early gives an error wrapping
// io.ErrUnexpectedEOF; other read errors (a deadline, a reset) are wrapped as
// they are. The caller sets the deadline.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		// One frame per stream: reading ahead past it loses nothing.
		b := bufio.NewReaderSize(r, 512)
		br, r = b, b
	}
	n, err := readLength(br)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, Errorf(ErrMalformed.Code, "frame of %d bytes exceeds the limit of %d", n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("protocol: read frame body: %w", err)
	}
	return buf, nil
}

// ReadMessage reads one frame of at most max bytes into m. A frame that does
// not decode is an error matching ErrMalformed.
func ReadMessage(r io.Reader, max int, m proto.Message) error {
	b, err := ReadFrame(r, max)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return Errorf(ErrMalformed.Code, "decode %T: %v", m, err)
	}
	return nil
}

// readLength reads a frame's uvarint length prefix. Unlike
// binary.ReadUvarint it tells the two failures apart: the reader's own error
// (a deadline, a reset stream, the stream ending early) is passed on wrapped,
// while a prefix that overflows 64 bits is malformed.
func readLength(br io.ByteReader) (uint64, error) {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("protocol: read frame length: %w", err)
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, Errorf(ErrMalformed.Code, "frame length prefix overflows 64 bits")
}
