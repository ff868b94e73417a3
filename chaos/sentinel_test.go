package chaos_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/redistest"
)

// sentinelMaster is the name the sentinels know the primary by.
const sentinelMaster = "ferry"

// sentinels of a Sentinel system: the primary, the replica and the
// sentinels, kept for the failover.
type sentinels struct {
	primary, replica *redistest.Server
	watchers         []*redistest.Server
}

// startSentinelSystem starts a primary, a replica of it, three sentinels
// watching the primary, and the nodes on a redis+sentinel:// URL. The
// nodes reach Redis directly (the sentinels hand out the real addresses).
func startSentinelSystem(t *testing.T) *system {
	t.Helper()
	proc := sentinels{primary: redistest.Start(t)}
	host, port, _ := strings.Cut(proc.primary.Addr, ":")
	proc.replica = redistest.StartWith(t, redistest.Options{Args: []string{"--replicaof", host, port}})
	waitUntil(t, "the replica to sync", func() bool {
		info, err := proc.replica.Do("INFO", "replication")
		s, _ := info.(string)
		return err == nil && strings.Contains(s, "master_link_status:up")
	})
	var addrs []string
	for range 3 {
		w := redistest.StartSentinel(t, proc.primary, sentinelMaster)
		proc.watchers = append(proc.watchers, w)
		addrs = append(addrs, w.Addr)
	}
	// A failover needs the sentinels to know each other (a majority elects
	// the leader) and the replica (learnt from the primary's INFO, every
	// 10 s).
	for _, w := range proc.watchers {
		waitUntil(t, "the sentinels to know each other and the replica", func() bool {
			others, err1 := w.Do("SENTINEL", "sentinels", sentinelMaster)
			replicas, err2 := w.Do("SENTINEL", "replicas", sentinelMaster)
			o, _ := others.([]any)
			r, _ := replicas.([]any)
			return err1 == nil && err2 == nil && len(o) == 2 && len(r) == 1
		})
	}
	s := startSystem(t, fmt.Sprintf("redis+sentinel://%s/%s/0", strings.Join(addrs, ","), sentinelMaster))
	s.sentinels = &proc
	s.redis = proc.primary
	return s
}

// failover kills the primary and waits until the sentinels promoted the
// replica.
func (s *system) failover(t *testing.T) {
	t.Helper()
	sp := s.sentinels
	sp.primary.Kill()
	waitUntil(t, "the sentinels to promote the replica", func() bool {
		reply, err := sp.watchers[0].Do("SENTINEL", "get-master-addr-by-name", sentinelMaster)
		parts, ok := reply.([]any)
		return err == nil && ok && len(parts) == 2 && fmt.Sprintf("%v:%v", parts[0], parts[1]) == sp.replica.Addr
	})
}

// waitUntil polls cond until it holds, failing the test after hangGuard.
// It keeps its own 50 ms loop rather than internal/testutil/wait, which
// polls every millisecond: each cond here dials Redis or a sentinel anew
// (redistest's Do) or makes a TLS handshake, and a minute of that at up to
// a thousand dials a second would leave more sockets in TIME_WAIT than
// there are ephemeral ports (28k here).
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened within %v: %s", hangGuard, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
