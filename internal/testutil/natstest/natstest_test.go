package natstest

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dialable reports whether something accepts TCP connections on addr.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	if !dialable(s.Addr) {
		t.Fatalf("nothing listens on %s", s.Addr)
	}
	addr := s.Addr
	s.Kill()
	if s.Running() || dialable(s.Addr) {
		t.Fatal("server still serves after Kill")
	}
	s.Restart(true)
	if s.Addr != addr || !dialable(s.Addr) {
		t.Fatalf("after Restart: address %s (was %s), dialable %v", s.Addr, addr, dialable(s.Addr))
	}
	s.Stop()
	s.Stop() // twice is harmless
	if s.Running() {
		t.Fatal("Running after Stop")
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t)
	if len(c.Servers) != 3 {
		t.Fatalf("%d servers, want 3", len(c.Servers))
	}
	seen := map[string]bool{}
	for _, s := range c.Servers {
		if seen[s.Addr] {
			t.Fatalf("two servers on %s", s.Addr)
		}
		seen[s.Addr] = true
		if err := s.healthy(); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
	}
	c.Servers[1].Kill()
	c.Servers[1].Restart(false)
	if err := c.Servers[1].healthy(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	c.Kill()
	for _, s := range c.Servers {
		if s.Running() || dialable(s.Addr) {
			t.Fatalf("%s still serves after Cluster.Kill", s.Name)
		}
	}
	c.Restart(false)
	for _, s := range c.Servers {
		if err := s.healthy(); err != nil {
			t.Fatalf("%s after Cluster.Restart: %v", s.Name, err)
		}
	}
}
