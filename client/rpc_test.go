package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/hooks"
	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

// TestRPC calls a real back end through a real node over each codec.
func TestRPC(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req hooks.RPCRequest
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.Method == "math.fail" {
			_ = json.NewEncoder(w).Encode(hooks.RPCAnswer{Error: &hooks.Refusal{Code: 422, Reason: "cannot"}})
			return
		}
		var in struct{ A, B int }
		_ = json.Unmarshal(req.Data, &in)
		_ = json.NewEncoder(w).Encode(hooks.RPCAnswer{Data: json.RawMessage(`{"sum":` + itoa(in.A+in.B) + `,"user":"` + req.User + `"}`)})
	}))
	defer backend.Close()
	n := startNode(t, func(c *server.Config) {
		c.Hooks = server.HooksConfig{RPC: map[string]string{"math.": backend.URL}, Secret: "rpc-test-secret"}
	})
	for _, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack, protocol.Protobuf} {
		t.Run(codec.Name(), func(t *testing.T) {
			c := dial(t, n, "alice", func(cfg *client.Config) { cfg.Codec = codec })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := c.RPC(ctx, "math.add", map[string]int{"a": 2, "b": 3})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != `{"sum":5,"user":"alice"}` {
				t.Fatalf("rpc answer %s", got)
			}
			_, err = c.RPC(ctx, "math.fail", nil)
			var se *client.ServerError
			if !errors.As(err, &se) || se.Code != 422 {
				t.Fatalf("refused rpc: %v, want a ServerError 422", err)
			}
			if _, err = c.RPC(ctx, "other", nil); !errors.As(err, &se) || se.Code != 404 {
				t.Fatalf("rpc without a back end: %v, want 404", err)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
