package broker

// Window works out which retained messages of a stream answer q, with the
// semantics documented on HistoryQuery and HistoryResult, for engines that
// hold a channel's retained messages as one contiguous run of offsets.
//
// The stream is at (offset, epoch); it retains count messages, the oldest
// at offset first (when count is 0, first should be offset+1). Window
// returns the bounds lo <= hi of the answer within those count messages
// and whether the answer is Complete:
//   - no Since: everything retained, complete;
//   - Since.Offset 0: everything retained, complete while nothing was
//     trimmed yet (first <= 1), in any epoch;
//   - another epoch: everything retained, not complete;
//   - ahead of the stream: nothing, not complete;
//   - otherwise: what follows Since.Offset, complete when nothing between
//     Since.Offset and first was lost.
//
// Limit then cuts the answer (negative: no messages at all).
func (q HistoryQuery) Window(offset uint64, epoch string, first uint64, count int) (lo, hi int, complete bool) {
	hi = count
	switch since := q.Since; {
	case since == nil:
		complete = true
	case since.Offset == 0:
		complete = first <= 1
	case since.Epoch != epoch:
	case since.Offset > offset:
		lo = count
	default:
		complete = since.Offset+1 >= first
		if complete {
			lo = min(int(since.Offset+1-first), count)
		}
	}
	switch {
	case q.Limit < 0:
		hi = lo
	case q.Limit > 0 && hi-lo > q.Limit:
		hi = lo + q.Limit
	}
	return lo, hi, complete
}
