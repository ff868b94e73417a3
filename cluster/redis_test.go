package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil/proxytest"
)

// span describes what a recorder holds of one epoch: the lowest and
// highest offsets and whether every offset between them is there.
func (r *recorder) span(epoch string) (first, last uint64, n int, contiguous bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var offs []uint64
	for p := range r.seen {
		if p.Epoch == epoch {
			offs = append(offs, p.Offset)
		}
	}
	if len(offs) == 0 {
		return 0, 0, 0, true
	}
	slices.Sort(offs)
	first, last = offs[0], offs[len(offs)-1]
	return first, last, len(offs), last-first+1 == uint64(len(offs))
}

// splitEpochs groups the publisher's positions by epoch, in order.
func splitEpochs(pos []position) (epochs []string, by map[string][]position) {
	by = map[string][]position{}
	for _, p := range pos {
		if _, ok := by[p.Epoch]; !ok {
			epochs = append(epochs, p.Epoch)
		}
		by[p.Epoch] = append(by[p.Epoch], p)
	}
	return epochs, by
}

// TestRedisLosesItsData: Redis restarts with an empty data set while 50
// messages a second flow, at once or after an outage of a few seconds.
// Every stream starts again at offset 1 in a new epoch. Connected clients
// go on with the new epoch and never get a message of the old one after
// it; clients that were away and come back with a position of the old
// epoch are told recovered: false with the new epoch and get the new
// stream from its start; traffic resumes.
func TestRedisLosesItsData(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage time.Duration // between the kill and the restart; 0: Restart at once
	}{
		{"restart", 0},
		{"outage-3s", 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) { redisLosesData(t, tc.outage) })
	}
}

func redisLosesData(t *testing.T, outage time.Duration) {
	c := startCluster(t, 3)
	ngx := proxytest.StartNginx(t, c.backends()...)
	const ch = "chat:redis"
	live := startSubscribers(t, c, ngx, ch)

	pub := newPublisher(c, ngx.URL(), ch)
	stop := pub.start(5000, pubInterval)
	defer stop()

	// Two clients that will be away during the restart: one on the SDK, one
	// raw. They remember their last position of the old epoch.
	awaySDK := startSDKSub(t, "sdk-away", ngx.URL(), nil, c.token("sdk-away"), ch)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // the whole test
	defer cancel()
	awayRaw, _, err := connectWS(ctx, ngx.WebSocketURL(), nil, c.token("raw-away"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subscribe(ctx, awayRaw, 2, ch, nil); err != nil {
		t.Fatal(err)
	}
	pub.wait(t, 100)
	var rawPos position
	for rawPos.Offset < 50 {
		f, err := awayRaw.expect(ctx, "message")
		if err != nil {
			t.Fatalf("away raw client: %v", err)
		}
		rawPos = position{Offset: f.Offset, Epoch: f.Epoch}
	}
	awayRaw.close()
	sdkPos := awaySDK.sub.Position()
	awaySDK.close()
	oldEpoch := pub.positions()[0].Epoch
	if rawPos.Epoch != oldEpoch || sdkPos.Epoch != oldEpoch {
		t.Fatalf("positions of the away clients (%v, %v) are not in the publisher's epoch %s", rawPos, sdkPos, oldEpoch)
	}

	before := pub.count()
	if outage > 0 {
		c.redis.Kill()
		time.Sleep(outage) // the outage itself: publishes fail meanwhile
	}
	restartAt := time.Now()
	c.redis.Restart(true)
	if !c.nodes.WaitReady(ctx) {
		t.Fatal("nodes not ready again after the redis restart")
	}
	t.Logf("redis down for %v after %d messages, back with no data; every node ready again %v later",
		outage, before, time.Since(restartAt).Round(time.Millisecond))
	pub.wait(t, pub.count()+150)

	// Back after the restart, with positions of the old epoch.
	back, _, err := connectWS(ctx, ngx.WebSocketURL(), nil, c.token("raw-away"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer back.close()
	sub, err := subscribe(ctx, back, 2, ch, &rawPos)
	if err != nil {
		t.Fatal(err)
	}
	newEpoch := pub.positions()[pub.count()-1].Epoch
	if sub.Recovered || sub.Epoch != newEpoch || sub.Epoch == oldEpoch {
		t.Fatalf("raw client back with since %d@%s: subscribed recovered=%v epoch %s (missed %d); want recovered false and the new epoch %s",
			rawPos.Offset, short(rawPos.Epoch), sub.Recovered, short(sub.Epoch), sub.Missed, short(newEpoch))
	}
	t.Logf("raw client back with since %d@%s: recovered false, epoch %s (was %s), latest offset %d, missed %d",
		rawPos.Offset, short(rawPos.Epoch), short(sub.Epoch), short(oldEpoch), sub.Offset, sub.Missed)
	rawBack := newRecorder("raw-back")
	go func() {
		for {
			f, err := back.next(ctx)
			if err != nil {
				return
			}
			if f.Type == "message" {
				rawBack.message(f.Epoch, f.Offset)
			}
		}
	}()
	sdkBack := startSDKSub(t, "sdk-back", ngx.URL(), nil, c.token("sdk-away"), ch,
		client.WithSince(client.Position{Offset: sdkPos.Offset, Epoch: sdkPos.Epoch}))

	pub.wait(t, pub.count()+50) // traffic goes on
	if err := stop(); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	t.Log(pub.summary())
	epochs, by := splitEpochs(pub.positions())
	if len(epochs) != 2 || epochs[0] != oldEpoch || epochs[1] != newEpoch {
		t.Fatalf("publishes landed in epochs %v, want %s then %s", epochs, oldEpoch, newEpoch)
	}
	oldWant, newWant := by[oldEpoch], by[newEpoch]
	checkContiguous(t, newWant)       // the new stream starts at 1
	tail := newWant[len(newWant)-50:] // published well after every node was ready again

	// Connected clients: the whole old stream they were connected for,
	// then the new epoch, never the old one again, and the tail of the new
	// stream: traffic resumed.
	waitDelivered(t, live, tail)
	var missedStart []string
	for _, s := range live {
		r := s.record()
		r.mu.Lock()
		gotEpochs, stale, dups, back := slices.Clone(r.epochs), r.stale, r.duplicates, r.backwards
		r.mu.Unlock()
		if !slices.Equal(gotEpochs, []string{oldEpoch, newEpoch}) {
			t.Errorf("%s saw epochs %v, want %s then %s", r.name, gotEpochs, short(oldEpoch), short(newEpoch))
		}
		if stale+dups+back > 0 {
			t.Errorf("%s: %d messages of the old epoch after the new one, %d duplicates, %d out of order", r.name, stale, dups, back)
		}
		if d := r.compare(oldWant); d.lost > 0 {
			t.Errorf("%s lost %d messages of the old epoch, published before the restart: %v", r.name, d.lost, d.lostSample)
		}
		first, last, n, contiguous := r.span(newEpoch)
		if !contiguous {
			t.Errorf("%s: new epoch offsets %d..%d with holes (%d messages)", r.name, first, last, n)
		}
		if first > 1 {
			missedStart = append(missedStart, fmt.Sprintf("%s missed 1..%d", r.name, first-1))
		}
	}
	t.Logf("connected clients: %d, each got the old epoch (%d messages) then the new one; live deliveries missed at the start of the new epoch: %v",
		len(live), len(oldWant), missedStart)
	// The SDK clients that stayed connected were told: one gap event from
	// the old epoch to the new one, as a re-subscription reports it.
	for _, s := range live {
		sdk, ok := s.(*sdkSub)
		if !ok {
			continue
		}
		r := sdk.record()
		r.mu.Lock()
		gaps := slices.Clone(r.gaps)
		r.mu.Unlock()
		if len(gaps) != 1 || gaps[0].Epoch != newEpoch || gaps[0].PrevEpoch != oldEpoch || gaps[0].After.Epoch != oldEpoch {
			t.Errorf("%s (connected through the restart) reported gaps %+v; want one gap from %s to %s", r.name, gaps, short(oldEpoch), short(newEpoch))
		}
	}

	// Clients back from away: nothing of the old epoch, the new stream
	// from offset 1 exactly once, and a gap report naming the new epoch.
	waitDelivered(t, []subscriber{sdkBack, rawSubRecorder{rawBack}}, newWant)
	for _, r := range []*recorder{sdkBack.record(), rawBack} {
		d := r.compare(newWant)
		r.mu.Lock()
		stale, epochsSeen := r.stale, slices.Clone(r.epochs)
		r.mu.Unlock()
		if d.lost+d.duplicated+d.extra+stale > 0 || !slices.Equal(epochsSeen, []string{newEpoch}) {
			t.Errorf("%s: lost %d, duplicated %d, unexpected %d, stale %d, epochs %v; want the new stream %s exactly once",
				r.name, d.lost, d.duplicated, d.extra, stale, epochsSeen, short(newEpoch))
		}
		t.Logf("%s: got the new epoch's %d messages, lost %d, duplicated %d", r.name, d.delivered, d.lost, d.duplicated)
	}
	r := sdkBack.record()
	r.mu.Lock()
	gaps := slices.Clone(r.gaps)
	r.mu.Unlock()
	if len(gaps) != 1 || gaps[0].Epoch != newEpoch || gaps[0].PrevEpoch != oldEpoch {
		t.Errorf("SDK client back with since %d@%s reported gaps %+v; want one gap from %s to %s", sdkPos.Offset, short(sdkPos.Epoch), gaps, short(oldEpoch), short(newEpoch))
	} else {
		t.Logf("SDK client back with since %d@%s: gap reported, epoch %s -> %s, missed %d", sdkPos.Offset, short(sdkPos.Epoch), short(gaps[0].PrevEpoch), short(gaps[0].Epoch), gaps[0].Missed)
	}
	logConnections(t, live)
}

// rawSubRecorder adapts a bare recorder to the subscriber interface.
type rawSubRecorder struct{ r *recorder }

func (s rawSubRecorder) record() *recorder { return s.r }
func (s rawSubRecorder) close()            {}
