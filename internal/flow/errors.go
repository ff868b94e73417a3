package flow

import "errors"

var (
	// ErrSlowConsumer is returned by Push (and Check) when the queue has
	// stayed over its bounds for longer than Config.Grace, or a push would
	// take it over HardFactor times its bounds. The pushed item was not
	// queued. The session closes the connection with
	// protocol.CloseSlowConsumer (4010).
	ErrSlowConsumer = errors.New("flow: slow consumer")

	// ErrInvalidItem is returned by Push for an item with neither Msg nor a
	// non-empty Frame, or with a negative Size. Nothing was queued.
	ErrInvalidItem = errors.New("flow: invalid item")
)
