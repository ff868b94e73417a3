// Package upload is Ferry's resumable uploads: one store, two ways in.
//
//   - Over a session (WebSocket, SSE or long-poll frames): upload.begin ->
//     upload.ready with the offset to resume from, upload.chunk ->
//     upload.progress once the bytes are on disk, upload.commit ->
//     upload.done once the sha256 of the whole file is verified
//     (Store.Begin, Store.Chunk, Store.Commit).
//   - tus 1.0 over HTTP at /v1/uploads/ through tusd's handler
//     (Store.Handler): core, creation, creation-with-upload, termination,
//     expiration.
//
// Both paths go through Store, which is a tusd DataStore wrapping tusd's
// filestore: an upload begun on one path continues on the other under the
// same id (the last segment of its tus URL), and the checks live in one
// place:
//
//   - ownership: every upload records its owner (metadata key ferry_user)
//     and GetUpload answers 404, as for an id that does not exist, to any
//     other user, so nothing about another user's uploads leaks;
//   - durability: WriteChunk fsyncs the file before it returns (unless
//     Config.NoSync), so the offset a client is told (upload.progress, the
//     Upload-Offset of a PATCH reply) survives a crash of the node;
//   - expiry: a partial upload that saw no bytes for Config.TTL answers
//     410 and is removed, by the request that finds it or by Sweep;
//   - limits: Config.MaxSize per upload (413), and per user
//     Config.MaxActivePerUser partial uploads (429) and
//     Config.MaxBytesPerUser declared bytes (413);
//   - the hash: every upload declares its sha256 (upload.begin's sha256,
//     tus metadata "sha256"); the bytes are hashed when the last one lands
//     on tus, and on upload.commit; a mismatch removes the upload (409).
//
// Locking: each write holds the upload's lock from the configured tusd
// Locker: tusd's filelocker by default (lock files next to the uploads,
// which serialize writers on one host, or several nodes sharing the
// directory on one host), or BrokerLocker, a lease in the cluster's broker
// (broker.Locker: Redis, NATS, RabbitMQ) that serializes writers on every node of
// the cluster. A lease is refreshed while held and lapses after its TTL
// when its node dies; a request waiting for a held lock asks the holder to
// release it through the broker's KV (tusd's requestRelease).
//
// Completion: Config.OnDone is called once an upload's hash is verified;
// the server publishes it to the configured channel and is the seam where
// a webhook plugs in. It may be called more than once for one upload (a
// commit repeated after a lost reply): receivers key on Done.ID.
package upload
