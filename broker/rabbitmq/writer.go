package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferry-io/ferry/broker/memory"
)

// Writer tuning.
const (
	// writerPrefetch is how many requests a writer takes ahead.
	writerPrefetch = 256
	// writerBatch caps the requests a writer applies before it waits for
	// their records' confirms.
	writerBatch = 128
	// recoverPrefetch is the credit of the consumer reading a stream back.
	recoverPrefetch = 512
	// recoverTimeout bounds reading a shard's stream back.
	recoverTimeout = 2 * time.Minute
	// appendTimeout bounds one append to a stream (until confirmed).
	appendTimeout = 30 * time.Second
	// recentRequests is how many of the newest publish requests a writer
	// remembers (id, result and record), so that a request redelivered
	// after the previous writer failed is answered and fanned out again,
	// not applied twice. A writer finishes one request before it takes
	// the next, so only its last few can be appended but unacknowledged.
	recentRequests = 1024
	// sweepEvery is how often a writer forgets expired keys and streams.
	sweepEvery = time.Second
)

// writer is the single writer of one shard on this node. Every node runs
// one per shard, all consuming the shard's request queue, which has a
// single active consumer: RabbitMQ hands the requests to one of them at a
// time. That one assigns offsets, appends to the shard's stream, fans the
// publication out and replies. When it goes away, RabbitMQ makes another
// consumer active, and that one reads the stream back before it answers.
//
// All of its state is touched by its own goroutine only.
type writer struct {
	s      *session
	shard  int
	stream string
	reqs   <-chan amqp.Delivery
	// pub appends to the stream (confirm mode), fans out and replies, in
	// that order per request.
	pub *amqp.Channel

	recovered bool
	// confirms are the appends not yet confirmed and fans the
	// publications to send once they are, in order (see run).
	confirms []*amqp.DeferredConfirmation
	fans     []fan
	// records holds the shard's presence, user connections and keys.
	records *memory.Broker
	states  map[string]*chanState
	idem    map[idemKey]result
	// requests are the recent publish requests by id; order is a ring of
	// their ids with the oldest at order[oldest] once it is full.
	requests  map[string]recent
	order     []string
	oldest    int
	lastSweep time.Time
}

type idemKey struct{ channel, key string }

// fan is a publication to send to the nodes once its record is confirmed.
type fan struct {
	channel string
	body    []byte
}

// recent is a remembered publish request.
type recent struct {
	offset uint64
	epoch  string
	// body is the record as appended, fanned out again on a redelivery.
	body    []byte
	channel string
}

// result is a remembered publish: where it landed and until when.
type result struct {
	offset  uint64
	epoch   string
	expires time.Time
}

func (s *session) newWriter(shard int) (*writer, error) {
	b := s.b
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	args := amqp.Table{
		"x-queue-type":                    "stream",
		"x-max-age":                       fmt.Sprintf("%ds", max(1, int64(b.cfg.StreamMaxAge/time.Second))),
		"x-stream-max-segment-size-bytes": b.cfg.StreamSegmentBytes,
	}
	if b.cfg.StreamMaxBytes > 0 {
		args["x-max-length-bytes"] = b.cfg.StreamMaxBytes
	}
	stream := b.names.shardStream(shard)
	if _, err := ch.QueueDeclare(stream, true, false, false, false, args); err != nil {
		return nil, fmt.Errorf("declare stream %s: %w", stream, err)
	}
	queue := b.names.shardQueue(shard)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-single-active-consumer": true}); err != nil {
		return nil, fmt.Errorf("declare queue %s: %w", queue, err)
	}
	if err := ch.Qos(writerPrefetch, 0, false); err != nil {
		return nil, err
	}
	reqs, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", queue, err)
	}
	pub, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := pub.Confirm(false); err != nil {
		return nil, err
	}
	return &writer{
		s: s, shard: shard, stream: stream, reqs: reqs, pub: pub,
		records:  newRecords(),
		states:   make(map[string]*chanState),
		idem:     make(map[idemKey]result),
		requests: make(map[string]recent),
	}, nil
}

// run serves requests until the connection ends, in batches: whatever
// requests are waiting (up to writerBatch) are applied one after the other
// to the state, their records appended to the stream without waiting; then
// the writer waits for all the confirms, fans the publications out, replies
// and acknowledges the batch. Offsets stay gapless because each request
// sees the state the one before left. A failure ends the whole session:
// the state is dropped, the unacknowledged requests go back to the queue
// for the next writer, which reads the stream back (records that did land
// are recognized by their request ids).
func (w *writer) run() {
	defer func() { _ = w.records.Close() }()
	for d := range w.reqs {
		batch := append(make([]amqp.Delivery, 0, writerBatch), d)
	more:
		for len(batch) < writerBatch {
			select {
			case next, ok := <-w.reqs:
				if !ok {
					break more
				}
				batch = append(batch, next)
			default:
				break more
			}
		}
		if err := w.serve(batch); err != nil {
			w.s.fail(fmt.Errorf("shard %d writer: %w", w.shard, err))
			return
		}
	}
}

// serve handles one batch of requests; see run.
func (w *writer) serve(batch []amqp.Delivery) error {
	reps := make([]*reply, len(batch))
	for i, d := range batch {
		rep, err := w.handle(d.Body)
		if err != nil {
			return err
		}
		reps[i] = rep
	}
	if err := w.flush(); err != nil {
		return err
	}
	for _, f := range w.fans {
		msg := amqp.Publishing{Type: typePub, Body: f.body}
		if err := w.pub.Publish(w.s.b.names.pubExchange(), routeKey(f.channel), false, false, msg); err != nil {
			return fmt.Errorf("fan out: %w", err)
		}
	}
	clear(w.fans)
	w.fans = w.fans[:0]
	for i, d := range batch {
		if d.ReplyTo == "" {
			continue
		}
		body, _ := json.Marshal(reps[i])
		msg := amqp.Publishing{CorrelationId: d.CorrelationId, Body: body}
		if err := w.pub.Publish("", d.ReplyTo, false, false, msg); err != nil {
			return fmt.Errorf("reply: %w", err)
		}
	}
	w.s.b.served.Add(uint64(len(batch)))
	// Deliveries come in order on one channel: acknowledging the last
	// with multiple acknowledges the batch.
	if err := batch[len(batch)-1].Ack(true); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// handle does one request. An error means the writer cannot go on; a
// request it cannot do gets a reply with Err.
func (w *writer) handle(body []byte) (*reply, error) {
	var req request
	if err := decode(body, &req); err != nil {
		return &reply{Err: err.Error()}, nil
	}
	if req.Shards != w.s.b.cfg.Shards {
		return &reply{Err: fmt.Sprintf("the sending node has Shards %d, this writer %d: every node must use the same", req.Shards, w.s.b.cfg.Shards)}, nil
	}
	if !w.recovered {
		if err := w.recover(); err != nil {
			return nil, fmt.Errorf("read back %s: %w", w.stream, err)
		}
		w.recovered = true
	}
	now := time.Now()
	if now.Sub(w.lastSweep) >= sweepEvery {
		w.sweep(now)
		w.lastSweep = now
	}
	switch req.Op {
	case opPublish:
		if req.Rec == nil || req.Rec.Channel == "" {
			return &reply{Err: "publish without a channel"}, nil
		}
		return w.publish(req.Rec, now)
	case opHistory:
		res := w.states[req.Channel].read(req.query(), now)
		return &reply{Offset: res.Offset, Epoch: res.Epoch, Complete: res.Complete, Messages: res.Messages}, nil
	case opPresenceAdd, opPresenceRemove, opPresenceList, opUserAdd, opUserRemove,
		opKVSet, opKVGet, opKVTake, opKVDelete, opLock, opLockRefresh, opUnlock:
		if req.Rec == nil {
			return &reply{Err: req.Op + " without a record"}, nil
		}
		return w.record(req.Op, req.Rec, now)
	default:
		return &reply{Err: fmt.Sprintf("unknown operation %q", req.Op)}, nil
	}
}

// publish checks the request id and the idempotency key, assigns the next
// offset, appends the record, updates the state and queues the fan-out
// for when the batch is confirmed. Nothing else changes this shard's state
// meanwhile, which is what makes the offsets gapless.
func (w *writer) publish(r *record, now time.Time) (*reply, error) {
	if e, ok := w.requests[r.Request]; ok && r.Request != "" {
		// The previous writer appended it but may have failed before the
		// fan-out: send it again. Nodes drop what they already had.
		w.fans = append(w.fans, fan{channel: e.channel, body: e.body})
		return &reply{Offset: e.offset, Epoch: e.epoch}, nil
	}
	ik := idemKey{r.Channel, r.IdemKey}
	if r.IdemKey != "" {
		if e, ok := w.idem[ik]; ok && now.Before(e.expires) {
			return &reply{Offset: e.offset, Epoch: e.epoch, Duplicate: true}, nil
		}
	}
	st := w.states[r.Channel]
	if st == nil || st.gone(now) {
		prev := ""
		if st != nil {
			prev = st.epoch
		}
		st = &chanState{epoch: newEpoch(prev)}
	}
	r.Offset = st.offset + 1
	r.Epoch = st.epoch
	// Never before the previous message, so TTLs stay ordered even when a
	// new writer's clock is behind the old one's.
	r.Time = max(now.UnixMilli(), st.last.UnixMilli())
	body, err := json.Marshal(r)
	if err != nil {
		return &reply{Err: err.Error()}, nil
	}
	if err := w.append(body); err != nil {
		return nil, err
	}
	w.states[r.Channel] = st
	w.remember(r, body)
	w.fans = append(w.fans, fan{channel: r.Channel, body: body})
	return &reply{Offset: r.Offset, Epoch: r.Epoch}, nil
}

// remember applies an appended record (body is its encoding) to the
// state, its idempotency key and its request id.
func (w *writer) remember(r *record, body []byte) {
	st := w.states[r.Channel]
	if st == nil || st.epoch != r.Epoch {
		st = &chanState{epoch: r.Epoch}
		w.states[r.Channel] = st
	} else if r.Offset != st.offset+1 {
		// Not the next offset (cannot happen with one writer at a time):
		// keep the history contiguous by dropping what came before.
		st.hist = nil
	}
	st.apply(r.publication(), r)
	at := time.UnixMilli(r.Time)
	res := result{offset: r.Offset, epoch: r.Epoch}
	if r.IdemKey != "" {
		res.expires = at.Add(time.Duration(r.IdemWindow))
		w.idem[idemKey{r.Channel, r.IdemKey}] = res
	}
	if r.Request != "" {
		if len(w.order) < recentRequests {
			w.order = append(w.order, r.Request)
		} else {
			delete(w.requests, w.order[w.oldest])
			w.order[w.oldest] = r.Request
			w.oldest = (w.oldest + 1) % recentRequests
		}
		w.requests[r.Request] = recent{offset: r.Offset, epoch: r.Epoch, body: body, channel: r.Channel}
	}
}

// append sends one record to the shard's stream; flush waits for its
// confirm.
func (w *writer) append(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	msg := amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}
	dc, err := w.pub.PublishWithDeferredConfirmWithContext(ctx, "", w.stream, false, false, msg)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	w.confirms = append(w.confirms, dc)
	return nil
}

// flush waits until RabbitMQ confirmed every record appended so far.
func (w *writer) flush() error {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	for _, dc := range w.confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if !ok {
			return errors.New("append: RabbitMQ refused a record (nack)")
		}
	}
	clear(w.confirms)
	w.confirms = w.confirms[:0]
	return nil
}

// recover rebuilds the shard's state from its stream. RabbitMQ does not
// tell a consumer where a stream ends, so the writer first appends a
// marker of its own, then reads from the first retained record until it
// meets the marker: everything before it is what earlier writers wrote.
func (w *writer) recover() error {
	mark := randomHex(8)
	body, _ := json.Marshal(&record{Kind: kindMark, Mark: mark})
	if err := w.append(body); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	ch, err := w.s.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(recoverPrefetch, 0, false); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	ds, err := ch.Consume(w.stream, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		return err
	}
	_ = w.records.Close()
	w.records = newRecords()
	w.states = make(map[string]*chanState)
	w.idem = make(map[idemKey]result)
	w.requests = make(map[string]recent)
	w.order, w.oldest = nil, 0
	n := 0
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("marker not found after %d records: %w", n, ctx.Err())
		case d, ok := <-ds:
			if !ok {
				return fmt.Errorf("stream consumer closed after %d records", n)
			}
			n++
			var r record
			if err := decode(d.Body, &r); err != nil {
				w.s.b.log.Warn("rabbitmq broker: skipped a stream record", slog.String("stream", w.stream), slog.Any("err", err))
			} else if r.Kind == kindMark && r.Mark == mark {
				_ = d.Ack(true)
				w.sweep(time.Now())
				return nil
			} else if r.Kind == kindPub && r.Channel != "" {
				w.remember(&r, d.Body)
			} else if r.Kind != kindMark {
				if _, err := w.applyRecord(&r, time.Now()); err != nil {
					return fmt.Errorf("replay %s record: %w", r.Kind, err)
				}
			}
			// Credit for the next records (streams need acks to flow).
			if n%(recoverPrefetch/4) == 0 {
				if err := d.Ack(true); err != nil {
					return err
				}
			}
		}
	}
}

// sweep forgets what has expired at now: idempotency keys and the state of channels whose stream is over.
func (w *writer) sweep(now time.Time) {
	for k, e := range w.idem {
		if !now.Before(e.expires) {
			delete(w.idem, k)
		}
	}
	for ch, st := range w.states {
		if st.gone(now) {
			delete(w.states, ch)
		}
	}
}

// newEpoch returns a random epoch different from prev.
func newEpoch(prev string) string {
	e := randomHex(8)
	for e == prev {
		e = randomHex(8)
	}
	return e
}
