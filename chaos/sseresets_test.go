package chaos_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/history"
)

// sseResetsTTL is the history_ttl of TestSSEResetsRecoverPastHistoryTTL's
// "chat" namespace: the soak's 10 minutes, shortened.
const sseResetsTTL = 8 * time.Second

// TestSSEResetsRecoverPastHistoryTTL is the soak's SSE loss (issue 21) in
// seconds: an SSE subscriber whose link is reset every second moves to the
// next node each time (a ticket there, then the stream with Last-Event-ID,
// the node adopting the session), for longer than history keeps a message.
// Every reconnection must recover from what the client has: a "recovered":
// false is a violation, since the client is never away for long. Before
// the fix the ticket request adopted the session without Last-Event-ID,
// every adoption went back to the position the session subscribed at, and
// once history_ttl had passed since the first publish each reconnection
// came back with "recovered": false.
func TestSSEResetsRecoverPastHistoryTTL(t *testing.T) {
	ns := strings.Replace(ferrytest.DefaultNamespaces, `"history_ttl": "10m"`, `"history_ttl": "`+sseResetsTTL.String()+`"`, 1)
	if ns == ferrytest.DefaultNamespaces {
		t.Fatalf("no history_ttl of 10m to shorten in ferrytest.DefaultNamespaces: %s", ns)
	}
	s := startSystem(t, "", "FERRY_NAMESPACES="+ns)
	rec := history.New()
	channels := []string{"chat:sse-resets"}
	sub := startSSE(t, s, rec, "sse1", 0, channels)
	pub := newPublisher(s, rec)
	pub.start(channels, 20, 2)
	defer pub.halt()

	// Resets until well past the first publish's expiry.
	resets := 0
	for end := time.Now().Add(sseResetsTTL + 6*time.Second); time.Now().Before(end); resets++ {
		time.Sleep(time.Second)
		resetLinks(t, s.toNode)
	}
	pub.halt()
	waitSettled(rec)
	sub.Close()

	sub.mu.Lock()
	moves := sub.errs
	sub.mu.Unlock()
	rep := rec.Check(history.Options{Window: historyWindow})
	t.Logf("%d resets, the client moved %d times; %s", resets, moves, strings.SplitN(rep.String(), "\n", 2)[0])
	if moves < resets/2 {
		t.Errorf("the client moved to another node %d times in %d resets: the resets did not reach it", moves, resets)
	}
	if !rep.OK() {
		t.Errorf("violations:\n%s", rep)
	}
}
