package client_test

import (
	"encoding/json"
	"fmt"

	"github.com/ferry-io/ferry/client"
)

// Encrypt a message's data before publishing it, and decrypt what arrives:
// the server keeps only the envelope. The TypeScript SDK reads and writes
// the same envelope (docs/sdk-js.md).
func ExampleSealE2E() {
	key := client.E2EKey{ID: "2026-12", Key: make([]byte, 32)} // the application's key of the channel
	env, err := client.SealE2E("med:ward-3", key, map[string]int{"heartRate": 72})
	if err != nil {
		panic(err)
	}
	// c.Publish(ctx, "med:ward-3", env) publishes it; a subscriber gets it
	// back as a Message whose Data is the envelope's JSON.
	data, _ := json.Marshal(env)
	plain, err := client.OpenE2E("med:ward-3", data, func(kid string) (client.E2EKey, bool) { return key, kid == key.ID })
	if err != nil {
		panic(err)
	}
	fmt.Println(env.E2E, env.KID, string(plain))
	// Output: 1 2026-12 {"heartRate":72}
}
