package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// API calls a node's server API (/v1/api/...).
type API struct {
	// URL is the node's base URL.
	URL string
	// Key is the API key.
	Key string
	// HTTP is the client. Default: one with a 10 s timeout.
	HTTP *http.Client
}

// PublishRequest is the body of POST /v1/api/publish.
type PublishRequest struct {
	Channel  string `json:"channel"`
	Data     any    `json:"data"`
	Key      string `json:"key,omitempty"`
	Priority string `json:"priority,omitempty"`
	Conflate string `json:"conflate,omitempty"`
}

// PublishResult is its reply.
type PublishResult struct {
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Duplicate bool   `json:"duplicate"`
}

var defaultHTTP = &http.Client{Timeout: 10 * time.Second}

// Publish publishes through the server API.
func (a *API) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	var res PublishResult
	err := a.call(ctx, http.MethodPost, "/v1/api/publish", req, &res)
	if err != nil {
		return res, fmt.Errorf("publish %q: %w", req.Channel, err)
	}
	return res, nil
}

// Get calls a GET endpoint (path with its query) and decodes the reply into out.
func (a *API) Get(ctx context.Context, path string, out any) error {
	return a.call(ctx, http.MethodGet, path, nil, out)
}

func (a *API) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.URL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Key)
	req.Header.Set("Content-Type", "application/json")
	hc := a.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
