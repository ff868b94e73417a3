package cluster_test

import (
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/proxytest"
)

// TestNATSServerKilledDuringTraffic: three nodes on a 3-server NATS cluster
// (streams replicated on all three) behind nginx; one NATS server is killed
// with SIGKILL while 50 messages a second are published, and restarted a
// few seconds later. The nodes' NATS clients move to the other servers;
// subscribers lose nothing and get nothing twice.
func TestNATSServerKilledDuringTraffic(t *testing.T) {
	engineFaultDuringTraffic(t, "chat:nats-kill", func(t *testing.T, c *cluster, pub *publisher) {
		victim := c.nats.Servers[0]
		victim.Kill()
		t.Logf("killed nats-server %s after %d messages", victim.Name, pub.count())
		pub.wait(t, pub.count()+100)
		victim.Restart(false)
		t.Logf("restarted nats-server %s after %d messages", victim.Name, pub.count())
	})
}

// TestNATSOutage: every NATS server is down for 10 s while 50 messages a
// second are published through nginx, then all come back with their
// stores. Meanwhile every node reports not ready (/readyz 503) and API
// publishes fail with 503 (the publisher retries with the same key);
// afterwards the nodes are ready again without a restart, the stream goes
// on in the same epoch, and subscribers lose nothing and get nothing twice.
func TestNATSOutage(t *testing.T) {
	engineFaultDuringTraffic(t, "chat:nats-outage", func(t *testing.T, c *cluster, pub *publisher) {
		c.nats.Kill()
		down := time.Now()
		eventually(t, "every node reports not ready", func() bool {
			for _, n := range c.nodes.Nodes {
				if n.Ready() {
					return false
				}
			}
			return true
		})
		// Counted once every node knows: a publish NATS stored just before
		// the kill may be answered a moment after it, and is not one
		// accepted while NATS was down.
		before := pub.count()
		t.Logf("nats down after %d messages; every node not ready %v later", before, time.Since(down).Round(time.Millisecond))
		time.Sleep(10*time.Second - time.Since(down)) // the outage itself
		if n := pub.count(); n != before {
			t.Errorf("%d publishes were accepted while NATS was down", n-before)
		}
		c.nats.Restart(false)
		back := time.Now()
		ctx, cancel := withTimeout()
		defer cancel()
		if !c.nodes.WaitReady(ctx) {
			t.Fatal("nodes not ready again after NATS came back")
		}
		t.Logf("nats back; every node ready again %v later", time.Since(back).Round(time.Millisecond))
		pub.mu.Lock()
		refused := pub.failures["HTTP 503"]
		pub.mu.Unlock()
		if refused == 0 {
			t.Errorf("no publish was answered 503 during the outage (failures: %s)", pub.summary())
		}
	})
}

// engineFaultDuringTraffic runs subscribers and a publisher through nginx
// in front of three nodes on NATS, applies fault once 150 messages are
// published, and checks that every subscriber got every message once.
func engineFaultDuringTraffic(t *testing.T, ch string, fault func(t *testing.T, c *cluster, pub *publisher)) {
	c := startClusterOn(t, onNATS, 3)
	ngx := proxytest.StartNginx(t, c.backends()...)
	subs := startSubscribers(t, c, ngx, ch)

	pub := newPublisher(c, ngx.URL(), ch)
	stop := pub.start(5000, pubInterval)
	defer stop()
	pub.wait(t, 150)
	fault(t, c, pub)
	pub.wait(t, pub.count()+150) // traffic goes on
	stopAndCheck(t, stop, pub, subs)
}
