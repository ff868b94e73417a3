package redis

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferry-io/ferry/broker"
)

// appendBody appends the node-built part of a history element (see the
// format in scripts.go): priority, the lengths of Conflate and From, then
// Conflate, From and Data back to back.
func appendBody(dst []byte, p *broker.Publication) []byte {
	dst = strconv.AppendUint(dst, uint64(p.Priority), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(p.Conflate)), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(p.From)), 10)
	dst = append(dst, ' ')
	dst = append(dst, p.Conflate...)
	dst = append(dst, p.From...)
	return append(dst, p.Data...)
}

// decodePublication parses a history element or pub/sub payload of channel
// ch. Data is copied out of msg.
func decodePublication(ch, msg string) (broker.Publication, error) {
	p := broker.Publication{Channel: ch}
	rest := msg
	field := func(name string) (string, error) {
		f, r, ok := strings.Cut(rest, " ")
		if !ok || f == "" {
			return "", fmt.Errorf("%w: %s missing", errMalformed, name)
		}
		rest = r
		return f, nil
	}
	number := func(name string, bits int) (uint64, error) {
		f, err := field(name)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(f, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("%w: %s %q", errMalformed, name, f)
		}
		return n, nil
	}

	var err error
	if p.Offset, err = number("offset", 64); err != nil {
		return p, err
	}
	if p.Epoch, err = field("epoch"); err != nil {
		return p, err
	}
	t, err := field("time")
	if err != nil {
		return p, err
	}
	if p.Time, err = strconv.ParseInt(t, 10, 64); err != nil {
		return p, fmt.Errorf("%w: time %q", errMalformed, t)
	}
	prio, err := number("priority", 8)
	if err != nil {
		return p, err
	}
	p.Priority = uint8(prio)
	clen, err := number("conflate length", 31)
	if err != nil {
		return p, err
	}
	flen, err := number("from length", 31)
	if err != nil {
		return p, err
	}
	if uint64(len(rest)) < clen+flen {
		return p, fmt.Errorf("%w: %d bytes left for %d of conflate and %d of from", errMalformed, len(rest), clen, flen)
	}
	p.Conflate = rest[:clen]
	p.From = rest[clen : clen+flen]
	p.Data = []byte(rest[clen+flen:])
	return p, nil
}

// encodePresence encodes what a presence entry holds besides its conn (the
// hash field): "<len(user)> <user><node>".
func encodePresence(info broker.PresenceInfo) string {
	return strconv.Itoa(len(info.User)) + " " + info.User + info.Node
}

// decodePresence parses encodePresence's output for conn.
func decodePresence(conn, v string) (broker.PresenceInfo, error) {
	n, rest, ok := strings.Cut(v, " ")
	ulen, err := strconv.Atoi(n)
	if !ok || err != nil || ulen < 0 || ulen > len(rest) {
		return broker.PresenceInfo{}, fmt.Errorf("%w: presence entry %q", errMalformed, v)
	}
	return broker.PresenceInfo{User: rest[:ulen], Conn: conn, Node: rest[ulen:]}, nil
}

// wireControl is a control message on the wire.
type wireControl struct {
	Node    string             `json:"n,omitempty"`
	Kind    broker.ControlKind `json:"k"`
	Channel string             `json:"ch,omitempty"`
	User    string             `json:"u,omitempty"`
	Conn    string             `json:"c,omitempty"`
	Code    int                `json:"code,omitempty"`
	Reason  string             `json:"r,omitempty"`
	Data    string             `json:"d,omitempty"`
}

func encodeControl(c broker.Control) ([]byte, error) {
	return json.Marshal(wireControl(c))
}

func decodeControl(msg string) (broker.Control, error) {
	var w wireControl
	if err := json.Unmarshal([]byte(msg), &w); err != nil {
		return broker.Control{}, fmt.Errorf("%w: control message: %v", errMalformed, err)
	}
	return broker.Control(w), nil
}
