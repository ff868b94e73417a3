package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/admin"
	"github.com/ferry-io/ferry/internal/api"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/internal/session"
)

// adminOff says how to turn the admin page on, in the 404 of /admin and
// the start-up log line.
const adminOff = "set admin.secret (FERRY_ADMIN_SECRET, at least 16 bytes) and restart the node to serve the admin page at /admin"

// adminState is what the admin page keeps between its snapshots: the
// recent disconnects and the other nodes' reports, both bounded. Nil when
// the page is off.
type adminState struct {
	disconnects admin.Ring
	nodes       *admin.NodeTable
}

// adminNodeTTL is how long a node is listed after its last report.
const adminNodeTTL = 5 * admin.DefaultInterval

// setupAdmin turns the admin page's bookkeeping on when a secret is
// configured: the disconnect ring (fed by the sessions' OnClosed) and the
// node reports on admin.NodesChannel. It runs in New, before any session.
func (s *Server) setupAdmin() {
	if s.cfg.Admin.Secret == "" {
		s.log.Info("admin page off: " + adminOff)
		return
	}
	a := &adminState{nodes: admin.NewNodeTable(adminNodeTTL)}
	s.admin = a
	s.env.OnClosed = func(c session.Closing) {
		a.disconnects.Add(admin.Disconnect{
			Time: time.Now().UnixMilli(), Conn: c.Conn, User: c.User, Transport: c.Transport, Code: c.Code, Reason: c.Reason,
		})
	}
	ctx, cancel := context.WithTimeout(s.lifetime, 10*time.Second)
	defer cancel()
	if err := s.hub.Subscribe(ctx, admin.NodesChannel, adminNodesSub{a}); err != nil {
		s.log.Warn("admin page: cannot follow the other nodes' reports; it lists this node only", slog.Any("err", err))
	}
	s.goTracked(s.adminReportLoop)
	s.log.Info("admin page on at /admin")
}

// adminHandler serves /admin: the page when it is on, else a 404 that
// says how to turn it on.
func (s *Server) adminHandler() http.Handler {
	if s.admin == nil {
		return admin.Off(adminOff)
	}
	h, err := admin.New(admin.Options{
		Secret:       s.cfg.Admin.Secret,
		SessionTTL:   s.cfg.Admin.SessionTTL,
		API:          api.Routes(apiBackend{s}),
		Source:       s,
		FailureRate:  s.cfg.API.AuthFailureRate,
		FailureBurst: s.cfg.API.AuthFailureBurst,
		ClientIP:     func(r *http.Request) netip.Addr { return auth.ClientIP(r, s.proxies) },
		Logger:       s.log,
	})
	if err != nil {
		// The embedded pages did not parse: a build defect, not a setting.
		s.log.Error("admin page unavailable", slog.Any("err", err))
		return admin.Off("the page failed to load: " + err.Error())
	}
	return h
}

// adminReportLoop publishes this node's report on admin.NodesChannel every
// interval, for every node's admin page.
func (s *Server) adminReportLoop() {
	t := time.NewTicker(admin.DefaultInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			b, err := json.Marshal(s.adminNodeReport())
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(s.lifetime, 2*time.Second)
			_, err = s.broker.Publish(ctx, admin.NodesChannel, broker.Publication{Data: b}, broker.PublishOptions{StreamTTL: time.Minute})
			cancel()
			if err != nil {
				s.log.Debug("admin page: node report not published", slog.Any("err", err))
			}
		}
	}
}

func (s *Server) adminNodeReport() admin.NodeReport {
	st := s.stats()
	return admin.NodeReport{
		ID: st.Node, Broker: st.Broker, Connections: st.Connections, Channels: st.Channels,
		QueueDepth: st.QueueDepth, Goroutines: st.Goroutines, RSSBytes: st.RSSBytes, UptimeSec: st.UptimeSec, Draining: st.Draining,
	}
}

// clientChannels is the number of channels with local subscribers, less
// the node's own subscription to admin.NodesChannel.
func (s *Server) clientChannels() int {
	n := s.hub.Channels()
	if s.admin != nil && s.hub.Subscribers(admin.NodesChannel) > 0 {
		n--
	}
	return n
}

// AdminSnapshot implements admin.Source: this node's connections and
// channels read from the registry and the hub, with the kept disconnects
// and node reports.
func (s *Server) AdminSnapshot(now time.Time) admin.Snapshot {
	b := admin.NewBuilder(s.cfg.NodeID, now)
	s.reg.Each(func(sess *session.Session) {
		sum := sess.Summary()
		if !sum.Connected {
			return
		}
		b.AddConn(admin.Conn{
			ID: sum.Conn, User: sum.User, Transport: sum.Transport, Opened: sum.Opened.UnixMilli(),
			Queued: sum.Queued, Subscriptions: sum.Subscriptions, Published: sum.Published,
		})
	})
	s.hub.EachChannel(func(ch string, n int) {
		if node.NamespaceOf(ch) != node.ReservedNamespace {
			b.AddChannel(ch, n)
		}
	})
	var nodes []admin.NodeReport
	var disconnects []admin.Disconnect
	if a := s.admin; a != nil {
		// This node's own report is taken now rather than from the
		// broker, so the page shows it even when the broker is down.
		a.nodes.Update(s.adminNodeReport(), now)
		nodes, disconnects = a.nodes.List(now), a.disconnects.List()
	}
	return b.Snapshot(nodes, disconnects)
}

// adminNodesSub receives the node reports on admin.NodesChannel (a hub
// subscriber: Deliver must not block).
type adminNodesSub struct{ a *adminState }

func (n adminNodesSub) Deliver(_ string, v any) {
	o, ok := v.(*node.Outgoing)
	// Only the nodes publish there (the namespace is closed to clients
	// and to the API), and they publish as the server: From is empty.
	if !ok || o.Msg.From() != "" {
		return
	}
	var r admin.NodeReport
	if err := json.Unmarshal(o.Msg.Data(), &r); err != nil || r.ID == "" {
		return
	}
	n.a.nodes.Update(r, time.Now())
}
