package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ferry-io/ferry/protocol"
)

// RPC calls method on the application's back end through the server (an
// rpc frame; docs/hooks.md) and returns the back end's answer as JSON
// ("null" when it sent none). data is encoded like Publish's (a
// json.RawMessage as it is; nil sends no data).
//
// An RPC is sent once: it is not sent again on the next connection when
// the connection drops before the answer (the back end may have acted on
// it), and the call then fails. The server's refusals come back as a
// *ServerError: 404 when no back end handles the method, 504 when the back
// end timed out, 503 when it is down or busy, 502 for a bad answer, or the
// back end's own code.
func (c *Client) RPC(ctx context.Context, method string, data any) (json.RawMessage, error) {
	if method == "" || len(method) > protocol.MaxMethodLen {
		return nil, fmt.Errorf("rpc: method must be 1 to %d bytes", protocol.MaxMethodLen)
	}
	f := protocol.ClientFrame{Type: protocol.TypeRPC, Method: method}
	if data != nil {
		raw, err := marshalData(data)
		if err != nil {
			return nil, fmt.Errorf("rpc %q: %w", method, err)
		}
		f.Data = raw
	}
	if err := c.checkSize(f); err != nil {
		return nil, fmt.Errorf("rpc %q: %w", method, err)
	}
	rep, err := c.request(ctx, f, false, nil)
	if err != nil {
		return nil, fmt.Errorf("rpc %q: %w", method, err)
	}
	return rawData(rep.Data), nil
}
