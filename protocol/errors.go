package protocol

import "errors"

// ErrMalformed is in codec.go, next to the Codec interface it belongs to.

var (
	// ErrNoJSONForm is wrapped by the errors for MessagePack values that
	// have no JSON equivalent: ext types (timestamps included), NaN and
	// infinities, and map keys that are maps or arrays.
	ErrNoJSONForm = errors.New("msgpack value has no JSON form")

	// ErrNotBase64 is wrapped by RawJSON.DecodeBytes when the value is not a
	// JSON string holding standard base64.
	ErrNotBase64 = errors.New("data is not a base64 string")
)
