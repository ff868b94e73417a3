package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxServerMessage caps one server message the bench client accepts.
const maxServerMessage = 1 << 20

// errProtocol marks server bytes that break RFC 6455 as this client reads it.
var errProtocol = errors.New("websocket protocol error")

// appendClientFrame appends one final, masked client frame. Clients must
// mask (RFC 6455 section 5.3); the key need not be unpredictable for a load
// generator, so callers pass a cheap one.
func appendClientFrame(dst []byte, op byte, payload []byte, key uint32) []byte {
	dst = append(dst, 0x80|op)
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], key)
	dst = append(dst, k[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= k[i&3]
	}
	return dst
}

// frameSink receives what a parser finds.
type frameSink interface {
	// message is a complete text or binary message; payload is only valid
	// during the call.
	message(payload []byte)
	// control is a ping, pong or close frame; payload is only valid during
	// the call.
	control(op byte, payload []byte)
}

// parser reads server frames incrementally. Between reads it keeps only the
// bytes of an incomplete frame (pend) and of a fragmented message (frag);
// both are nil while the connection is idle.
type parser struct {
	pend   []byte
	frag   []byte
	fragOp byte
}

// feed parses data and calls sink for every complete frame. data may be
// reused by the caller after feed returns.
func (p *parser) feed(data []byte, sink frameSink) error {
	inPend := len(p.pend) > 0
	if inPend {
		p.pend = append(p.pend, data...)
		data = p.pend
	}
	whole := len(data)
	for len(data) > 0 {
		n, err := p.one(data, sink)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		data = data[n:]
	}
	if len(data) == 0 {
		if cap(p.pend) > 4096 {
			p.pend = nil
		} else {
			p.pend = p.pend[:0]
		}
		return nil
	}
	if inPend && len(data) == whole {
		return nil // still one incomplete frame, already kept in p.pend
	}
	// Keep the incomplete frame; append copies with memmove semantics, so
	// data may be a later part of p.pend itself.
	p.pend = append(p.pend[:0], data...)
	return nil
}

// one parses the frame at the start of data and returns how many bytes it
// took, or 0 when data does not hold the whole frame yet.
func (p *parser) one(data []byte, sink frameSink) (int, error) {
	if len(data) < 2 {
		return 0, nil
	}
	b0, b1 := data[0], data[1]
	fin := b0&0x80 != 0
	op := b0 & 0x0f
	if b0&0x70 != 0 {
		return 0, fmt.Errorf("%w: reserved bits set", errProtocol)
	}
	if b1&0x80 != 0 {
		return 0, fmt.Errorf("%w: masked server frame", errProtocol)
	}
	n := uint64(b1 & 0x7f)
	hl := 2
	switch n {
	case 126:
		if len(data) < 4 {
			return 0, nil
		}
		n, hl = uint64(binary.BigEndian.Uint16(data[2:4])), 4
	case 127:
		if len(data) < 10 {
			return 0, nil
		}
		n, hl = binary.BigEndian.Uint64(data[2:10]), 10
	}
	if n > maxServerMessage {
		return 0, fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
	}
	if uint64(len(data)-hl) < n {
		return 0, nil
	}
	payload := data[hl : hl+int(n)]
	switch {
	case op >= opClose:
		if op > opPong || !fin || n > 125 {
			return 0, fmt.Errorf("%w: bad control frame (opcode %d)", errProtocol, op)
		}
		sink.control(op, payload)
	case op == opText || op == opBinary:
		if p.fragOp != 0 {
			return 0, fmt.Errorf("%w: new message inside a fragmented one", errProtocol)
		}
		if fin {
			sink.message(payload)
		} else {
			p.fragOp = op
			p.frag = append(p.frag[:0], payload...)
		}
	case op == opContinuation:
		if p.fragOp == 0 {
			return 0, fmt.Errorf("%w: continuation without a message", errProtocol)
		}
		if len(p.frag)+len(payload) > maxServerMessage {
			return 0, fmt.Errorf("%w: fragmented message too large", errProtocol)
		}
		p.frag = append(p.frag, payload...)
		if fin {
			sink.message(p.frag)
			p.frag, p.fragOp = nil, 0
		}
	default:
		return 0, fmt.Errorf("%w: reserved opcode %d", errProtocol, op)
	}
	return hl + int(n), nil
}
