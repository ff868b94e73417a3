package node

import (
	"strings"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// Rules are a namespace's rules, as the node and its sessions apply them.
type Rules struct {
	HistorySize int
	HistoryTTL  time.Duration
	Presence    bool
	JoinLeave   bool
	Publish     bool
	Subscribe   bool
	Priority    protocol.Priority
	Rate        float64
	// SubscribeHook and PublishHook are the URLs of the namespace's
	// back-end hooks ("" = none; see internal/session/hooks.go).
	SubscribeHook string
	PublishHook   string
}

// ReservedNamespace is the namespace of the channels nodes use among
// themselves (the admin page's node reports). RulesFor refuses it, so no
// client frame and no server API call reaches it, in development mode
// too; the config refuses a namespace of that name.
const ReservedNamespace = "ferry-admin"

// Namespaces maps a channel to its namespace's rules. The zero value serves
// no channel. It is read-only once built.
type Namespaces struct {
	// ByName holds the rules of each configured namespace.
	ByName map[string]Rules
	// Fallback, when set, are the rules of a namespace that is not in
	// ByName (development mode serves every channel).
	Fallback *Rules
}

// RulesFor returns the rules of ch's namespace; false when there are none.
//
// The ReservedNamespace has no rules: its channels carry what nodes tell
// each other, which no client and no server API call may read or write.
func (ns Namespaces) RulesFor(ch string) (Rules, bool) {
	name := NamespaceOf(ch)
	if name == ReservedNamespace {
		return Rules{}, false
	}
	if r, ok := ns.ByName[name]; ok {
		return r, true
	}
	if ns.Fallback != nil {
		return *ns.Fallback, true
	}
	return Rules{}, false
}

// NamespaceOf returns the namespace name of a channel: what comes before
// its first ':', or "default" when it has none.
func NamespaceOf(channel string) string {
	if i := strings.IndexByte(channel, ':'); i >= 0 {
		return channel[:i]
	}
	return "default"
}
