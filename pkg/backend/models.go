package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// maxModelsBody bounds the model list; OpenAI's own is about 20 KiB.
const maxModelsBody = 4 << 20

// Model is one entry of the backend's model list.
type Model struct {
	ID      string // the name to put in Request.Model
	OwnedBy string // "library", "organization-owner", ...; may be empty
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
			ID      string `json:"id"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, failed("model list: "+err.Error(), err)
	}
	models := make([]Model, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			models = append(models, Model{ID: m.ID, OwnedBy: m.OwnedBy})
		}
	}
	return models, nil
}
