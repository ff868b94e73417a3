package rabbitmq

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes, as a stream or a node queue
// could hold, to the record decoder: it must fail cleanly or give a record
// that encodes again to the same record.
func FuzzDecodeRecord(f *testing.F) {
	seed, _ := json.Marshal(&record{Kind: kindPub, Channel: "chat:1", Offset: 3, Epoch: "ab", Data: []byte(`{"x":1}`), Time: 1})
	f.Add(seed)
	f.Add([]byte(`{"k":"mark","m":"0011"}`))
	f.Add([]byte(`{"k":"kv.set","ky":"t","v":"AA==","x":-1}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r record
		if err := decode(body, &r); err != nil {
			return
		}
		p := r.publication()
		if p.Channel != r.Channel || p.Offset != r.Offset {
			t.Fatalf("publication %+v does not match record %+v", p, r)
		}
		again, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var r2 record
		if err := decode(again, &r2); err != nil {
			t.Fatalf("decode of a re-encoded record: %v", err)
		}
	})
}

// FuzzDecodeRequest does the same for writer requests, which any client of
// the shard queues could send.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"op":"publish","n":16,"rec":{"k":"pub","c":"x"}}`))
	f.Add([]byte(`{"op":"history","n":16,"c":"x","hs":true,"so":3,"se":"e","l":-1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req request
		if err := decode(body, &req); err != nil {
			return
		}
		q := req.query()
		if req.HasSince != (q.Since != nil) {
			t.Fatalf("query %+v from request %+v", q, req)
		}
	})
}
