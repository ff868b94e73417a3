package client

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// End-to-end payload encryption, the same envelope as the TypeScript SDK
// (@ferry/client/e2e, docs/sdk-js.md): the application holds the keys of a
// channel, the server stores and relays only
//
//	{"e2e":1,"kid":"<key id>","iv":"<12 bytes, base64>","ct":"<ciphertext and 16-byte tag, base64>"}
//
// AES-GCM over the JSON of the data, with the channel name as additional
// authenticated data, so an envelope copied to another channel does not
// open. Publish the Envelope that SealE2E returns as the data; open a
// received Message's Data with OpenE2E.

// ErrE2E is wrapped by every error of OpenE2E: not an envelope, another
// key id, or a ciphertext that does not authenticate.
var ErrE2E = errors.New("e2e")

// E2EKey is one key of a channel: an id the envelopes name, and 16, 24 or 32
// bytes (AES-128, -192, -256).
type E2EKey struct {
	ID  string
	Key []byte
}

// Envelope is the encrypted form of a message's data.
type Envelope struct {
	E2E int    `json:"e2e"`
	KID string `json:"kid"`
	IV  string `json:"iv"`
	CT  string `json:"ct"`
}

// e2eIVSize is the GCM nonce size both SDKs use.
const e2eIVSize = 12

// SealE2E encrypts the JSON of data for channel with key, under a fresh
// random IV.
func SealE2E(channel string, key E2EKey, data any) (Envelope, error) {
	iv := make([]byte, e2eIVSize)
	if _, err := rand.Read(iv); err != nil {
		return Envelope{}, fmt.Errorf("e2e seal: %w", err)
	}
	return sealE2E(channel, key, data, iv)
}

// sealE2E is SealE2E with a given IV (test vectors use fixed ones; never
// reuse an IV with one key in real use).
func sealE2E(channel string, key E2EKey, data any, iv []byte) (Envelope, error) {
	aead, err := e2eAEAD(key)
	if err != nil {
		return Envelope{}, fmt.Errorf("e2e seal: %w", err)
	}
	plain, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("e2e seal: data: %w", err)
	}
	ct := aead.Seal(nil, iv, plain, []byte(channel))
	return Envelope{E2E: 1, KID: key.ID, IV: base64.StdEncoding.EncodeToString(iv), CT: base64.StdEncoding.EncodeToString(ct)}, nil
}

// IsE2E reports whether raw (a message's Data) is an envelope.
func IsE2E(raw []byte) bool {
	var e Envelope
	return json.Unmarshal(raw, &e) == nil && e.E2E == 1 && e.KID != "" && e.IV != "" && e.CT != ""
}

// OpenE2E decrypts an envelope received on channel and returns the JSON of
// the data. keyFor returns the key of an id (false: unknown id).
func OpenE2E(channel string, raw []byte, keyFor func(kid string) (E2EKey, bool)) (json.RawMessage, error) {
	var e Envelope
	if err := json.Unmarshal(raw, &e); err != nil || e.E2E != 1 || e.KID == "" {
		return nil, fmt.Errorf("%w: not an envelope: want {\"e2e\":1,\"kid\",\"iv\",\"ct\"}", ErrE2E)
	}
	key, ok := keyFor(e.KID)
	if !ok {
		return nil, fmt.Errorf("%w: no key %q for channel %q", ErrE2E, e.KID, channel)
	}
	aead, err := e2eAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrE2E, err)
	}
	iv, err1 := base64.StdEncoding.DecodeString(e.IV)
	ct, err2 := base64.StdEncoding.DecodeString(e.CT)
	if err1 != nil || err2 != nil || len(iv) != e2eIVSize {
		return nil, fmt.Errorf("%w: iv or ct is not valid base64 (iv must be %d bytes)", ErrE2E, e2eIVSize)
	}
	plain, err := aead.Open(nil, iv, ct, []byte(channel))
	if err != nil {
		return nil, fmt.Errorf("%w: envelope on %q does not open with key %q (altered, another channel, or a wrong key)", ErrE2E, channel, e.KID)
	}
	return plain, nil
}

// e2eAEAD is AES-GCM with key, after checking its size.
func e2eAEAD(key E2EKey) (cipher.AEAD, error) {
	switch len(key.Key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("key %q: want 16, 24 or 32 bytes, got %d", key.ID, len(key.Key))
	}
	block, err := aes.NewCipher(key.Key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
