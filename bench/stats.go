package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// ServerStats is a node's GET /v1/api/stats report (the fields the bench
// uses).
type ServerStats struct {
	Node        string  `json:"node"`
	Broker      string  `json:"broker"`
	Connections int     `json:"connections"`
	Channels    int     `json:"channels"`
	QueueDepth  int     `json:"queue_depth"`
	Goroutines  int     `json:"goroutines"`
	RSSBytes    int64   `json:"rss_bytes"`
	HeapBytes   uint64  `json:"heap_bytes"`
	StackBytes  uint64  `json:"stack_bytes"`
	CPUSeconds  float64 `json:"cpu_seconds"`
}

// fetchStats calls GET /v1/api/stats on t.
func fetchStats(ctx context.Context, hc *http.Client, t Target, apiKey string) (ServerStats, error) {
	var st ServerStats
	if apiKey == "" {
		return st, fmt.Errorf("%w: no API key", ErrStats)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.Base+"/v1/api/stats", nil)
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrStats, err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := hc.Do(req)
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrStats, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrStats, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%w: HTTP %d: %s", ErrStats, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("%w: %v", ErrStats, err)
	}
	return st, nil
}
