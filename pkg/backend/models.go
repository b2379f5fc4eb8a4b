package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
)

// maxModelsBody bounds the model list; OpenAI's own is about 20 KiB.
const maxModelsBody = 4 << 20

// Model is one entry of the backend's model list.
type Model struct {
	ID      string // the name to put in Request.Model
	OwnedBy string // "library", "organization-owner", ...; may be empty
	// ContextLength is the context window when the backend says it (vLLM's
	// max_model_len, or a context_length / max_context_length field as
	// some servers add); 0 when it does not. OpenAI and Ollama do not.
	ContextLength uint32
}

// Models lists the backend's models (GET {base}/models) in the order the
// backend gives them. Entries without an id are skipped.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	resp, err := c.do(ctx, http.MethodGet, "/models", nil, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, statusError(resp, c.now())
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxModelsBody+1))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if len(body) > maxModelsBody {
		return nil, failed(fmt.Sprintf("model list longer than %d bytes", maxModelsBody), nil)
	}
	return decodeModels(body)
}

func decodeModels(body []byte) ([]Model, error) {
	var list struct {
		Data []struct {
			ID               string  `json:"id"`
			OwnedBy          string  `json:"owned_by"`
			MaxModelLen      float64 `json:"max_model_len"`
			ContextLength    float64 `json:"context_length"`
			MaxContextLength float64 `json:"max_context_length"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, failed("model list: "+err.Error(), err)
	}
	models := make([]Model, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			models = append(models, Model{ID: m.ID, OwnedBy: m.OwnedBy,
				ContextLength: contextLength(m.MaxModelLen, m.ContextLength, m.MaxContextLength)})
		}
	}
	return models, nil
}

// contextLength is the first of the values that is a whole number of
// tokens in uint32's range, or 0.
func contextLength(vs ...float64) uint32 {
	for _, v := range vs {
		if v >= 1 && v <= math.MaxUint32 && v == math.Trunc(v) {
			return uint32(v)
		}
	}
	return 0
}
