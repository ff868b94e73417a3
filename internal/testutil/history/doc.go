// Package history records what a chaos run did and checks it afterwards,
// in the manner of a Jepsen history: every publish the server accepted
// (channel, offset, epoch, idempotency key, payload hash), every message
// handed to an application (client, channel, offset, epoch, key, hash), the
// position each subscription started from, and every recovered: false
// (a gap the server admitted).
//
// Check reports, per channel:
//
//   - lost: an accepted publish that a subscriber never got although it
//     was subscribed (its start position comes before the message) and no
//     admitted gap covers it;
//   - duplicated: a client got the same message twice (the same position,
//     or the same idempotency key at two positions: a publish applied
//     twice);
//   - reordered: a client got offsets of one epoch out of order;
//   - mismatched: a client got a message at a position whose payload is not
//     what the publish accepted there (an offset handed out twice in one
//     epoch, as after Redis restored an older snapshot);
//   - reapplied: a publish retried with the same key after the broker lost
//     its data (idempotency keys included) lands again in the new epoch;
//     counted, not a violation (same-epoch copies are duplicates);
//   - recovered: false gaps, counted, and reported as unjustified when the
//     epoch did not change and fewer messages were published after the
//     client's position than the history window holds (recovery should
//     then have succeeded).
//
// A publish whose outcome is unknown (it failed or timed out) is recorded
// with Attempted; it is never counted lost, and when it shows up it is
// matched by its key.
//
// The Recorder is safe for concurrent use; its methods never block on
// anything but its own mutex, so they can be called from message handlers.
package history
