package backend

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// maxEvent bounds one server-sent event line, and the data of one event.
const maxEvent = 1 << 20

// errDone is returned by eventReader.next at "data: [DONE]".
var errDone = errors.New("backend: [DONE]")

// eventReader splits a text/event-stream body into data payloads as the
// lines arrive. Comments (":..."), "event:", "id:" and "retry:" lines are
// ignored; "data:" takes an optional space. Every OpenAI-compatible server
// writes one JSON object per data line, so a payload is handed out as soon
// as its data lines form valid JSON, without waiting for the blank line
// that ends the event; data split over several lines (legal SSE) still
// decodes, joined with newlines. Lines end in "\n" or "\r\n".
type eventReader struct {
	sc   *bufio.Scanner
	data []byte // data of the event being read; reused between events
}

func newEventReader(r io.Reader) *eventReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEvent)
	return &eventReader{sc: sc}
}

// next returns the next data payload, valid until the following call;
// errDone at [DONE]; io.EOF when the body ends cleanly with no event
// pending; a KindFailed *Error for an over-long line or event; or the
// body's read error.
func (e *eventReader) next() ([]byte, error) {
	for e.sc.Scan() {
		line := e.sc.Bytes()
		if len(line) == 0 { // end of event
			if len(e.data) > 0 {
				return e.take(), nil
			}
			continue
		}
		field, value := splitField(line)
		if string(field) != "data" {
			continue
		}
		if len(e.data) > 0 {
			e.data = append(e.data, '\n')
		}
		e.data = append(e.data, value...)
		switch {
		case len(e.data) > maxEvent:
			return nil, failed(fmt.Sprintf("stream event longer than %d bytes", maxEvent), nil)
		case string(bytes.TrimSpace(e.data)) == "[DONE]":
			e.data = e.data[:0]
			return nil, errDone
		case json.Valid(e.data):
			return e.take(), nil
		}
	}
	if err := e.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, failed(fmt.Sprintf("stream line longer than %d bytes", maxEvent), err)
		}
		return nil, err
	}
	if len(e.data) > 0 { // an unfinished event: let the decoder say what is wrong
		return e.take(), nil
	}
	return nil, io.EOF
}

func (e *eventReader) take() []byte {
	p := e.data
	e.data = e.data[:0]
	return p
}

// splitField splits an SSE line into field name and value; a comment has
// an empty name.
func splitField(line []byte) (field, value []byte) {
	field, value, found := bytes.Cut(line, []byte(":"))
	if !found {
		return line, nil
	}
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return field, value
}

// chunk is what lloom needs of one streamed completion chunk.
type chunk struct {
	text   string // choices[0]'s content delta (chat) or text (completion)
	finish string // the last finish_reason among the choices
	usage  *Usage
	err    string // the message of an "error" member
}

type wireChunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// parseChunk decodes one data payload of a chat (chat true) or text
// completion stream.
func parseChunk(payload []byte, chat bool) (chunk, error) {
	var w wireChunk
	if err := json.Unmarshal(payload, &w); err != nil {
		return chunk{}, err
	}
	var c chunk
	if len(w.Error) > 0 && string(w.Error) != "null" {
		c.err = errorText(w.Error)
		if c.err == "" {
			c.err = "error without a message"
		}
	}
	if len(w.Choices) > 0 {
		if chat {
			c.text = w.Choices[0].Delta.Content
		} else {
			c.text = w.Choices[0].Text
		}
	}
	for _, ch := range w.Choices {
		if ch.FinishReason != "" {
			c.finish = ch.FinishReason
		}
	}
	if w.Usage != nil {
		c.usage = &Usage{PromptTokens: clampU32(w.Usage.PromptTokens), CompletionTokens: clampU32(w.Usage.CompletionTokens)}
	}
	return c, nil
}

func clampU32(v int64) uint32 { return uint32(min(max(v, 0), math.MaxUint32)) }
