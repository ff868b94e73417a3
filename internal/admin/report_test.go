package admin

import (
	"fmt"
	"testing"
	"time"
)

func TestBuilderKeepsTheTopRows(t *testing.T) {
	b := NewBuilder("n1", time.Unix(100, 0))
	for i := range 3 * MaxRows {
		user := fmt.Sprintf("u%d", i%(MaxRows+7))
		b.AddConn(Conn{ID: fmt.Sprint(i), User: user, Opened: int64(i), Queued: i % 10, Published: uint64(i)})
		b.AddChannel(fmt.Sprintf("ch%d", i), i)
	}
	s := b.Snapshot(nil, nil)
	if s.Connections != 3*MaxRows || s.Channels != 3*MaxRows {
		t.Fatalf("counts %d %d", s.Connections, s.Channels)
	}
	for name, n := range map[string]int{"conns": len(s.Conns), "channels": len(s.TopChannels), "slow": len(s.SlowConsumers), "publishers": len(s.TopPublishers)} {
		if n != MaxRows {
			t.Errorf("%s: %d rows, want %d", name, n, MaxRows)
		}
	}
	if s.Conns[0].Opened != 3*MaxRows-1 || s.Conns[MaxRows-1].Opened != 2*MaxRows {
		t.Errorf("newest connections: first %d last %d", s.Conns[0].Opened, s.Conns[MaxRows-1].Opened)
	}
	if s.TopChannels[0].Subscribers != 3*MaxRows-1 || s.TopChannels[MaxRows-1].Subscribers != 2*MaxRows {
		t.Errorf("top channels: first %d last %d", s.TopChannels[0].Subscribers, s.TopChannels[MaxRows-1].Subscribers)
	}
	if s.SlowConsumers[0].Queued != 9 {
		t.Errorf("slowest consumer has %d queued", s.SlowConsumers[0].Queued)
	}
	for i := 1; i < MaxRows; i++ {
		if s.TopPublishers[i].Published > s.TopPublishers[i-1].Published {
			t.Fatalf("publishers out of order at %d: %v", i, s.TopPublishers[:i+1])
		}
	}
	// u0 had connections 0, 57, 114: the sum of their publishes.
	var u0 *Publisher
	for i := range s.TopPublishers {
		if s.TopPublishers[i].User == "u0" {
			u0 = &s.TopPublishers[i]
		}
	}
	if u0 == nil || u0.Published != 57+114 || u0.Conns != 2 {
		t.Fatalf("u0: %+v", u0)
	}
	empty := NewBuilder("n1", time.Unix(0, 0)).Snapshot(nil, nil)
	if empty.Conns == nil || empty.TopChannels == nil || empty.TopPublishers == nil || empty.SlowConsumers == nil {
		t.Fatal("an empty snapshot must list [] (not null) for the page")
	}
}

func TestRingKeepsTheNewest(t *testing.T) {
	var r Ring
	if len(r.List()) != 0 {
		t.Fatal("new ring not empty")
	}
	for i := range MaxDisconnects + 5 {
		r.Add(Disconnect{Code: i})
	}
	l := r.List()
	if len(l) != MaxDisconnects || l[0].Code != MaxDisconnects+4 || l[len(l)-1].Code != 5 {
		t.Fatalf("ring: %d kept, newest %d, oldest %d", len(l), l[0].Code, l[len(l)-1].Code)
	}
}

func TestNodeTableForgetsSilentNodes(t *testing.T) {
	tab := NewNodeTable(5 * time.Second)
	t0 := time.Unix(1000, 0)
	tab.Update(NodeReport{ID: "b", Connections: 1}, t0)
	tab.Update(NodeReport{ID: "a"}, t0.Add(3*time.Second))
	tab.Update(NodeReport{ID: "b", Connections: 2}, t0.Add(time.Second))
	if l := tab.List(t0.Add(4 * time.Second)); len(l) != 2 || l[0].ID != "a" || l[1].Connections != 2 {
		t.Fatalf("list: %+v", l)
	}
	if l := tab.List(t0.Add(7 * time.Second)); len(l) != 1 || l[0].ID != "a" {
		t.Fatalf("b should be forgotten: %+v", l)
	}
	for i := range MaxNodes + 10 {
		tab.Update(NodeReport{ID: fmt.Sprint("n", i)}, t0.Add(8*time.Second))
	}
	if l := tab.List(t0.Add(8 * time.Second)); len(l) != MaxNodes {
		t.Fatalf("table holds %d nodes, cap %d", len(l), MaxNodes)
	}
}
