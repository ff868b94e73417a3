package ws

import (
	"encoding/binary"
	"unicode/utf8"
)

// opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type opcode uint8

const (
	opContinuation opcode = 0x0
	opText         opcode = 0x1
	opBinary       opcode = 0x2
	opClose        opcode = 0x8
	opPing         opcode = 0x9
	opPong         opcode = 0xA
)

// Frame header bits.
const (
	bitFIN  = 0x80
	bitRSV1 = 0x40
	bitRSV2 = 0x20
	bitRSV3 = 0x10
	bitMask = 0x80

	maxControlPayload = 125
)

// frameSink receives what the parser decodes. Payload slices are valid only
// during the call. An error returned by a sink method stops the parser and is
// returned from feed unchanged.
type frameSink interface {
	// message receives one complete data message: op is opText or opBinary,
	// compressed tells that the first frame had RSV1 set (permessage-deflate)
	// and payload is still compressed. Uncompressed text is already
	// validated as UTF-8.
	message(op opcode, compressed bool, payload []byte) error
	// control receives one complete control frame. A close payload is
	// already validated (empty, or a valid code and a UTF-8 reason).
	control(op opcode, payload []byte) error
}

// parser is an incremental decoder of client-to-server frames. It is fed
// whatever bytes arrive, in chunks of any size, and keeps between calls only
// an incomplete header (in a fixed array), the payload of a message that did
// not arrive within one chunk (in a pooled buffer, released when the message
// completes) and a partial control frame. A message whose frame arrives
// whole within one chunk is delivered in place, without a copy.
//
// Violations are reported as *protoError carrying the close code.
type parser struct {
	maxMsg  int64 // limit on a reassembled message (uncompressed bytes)
	tooBig  int   // close code for a message over maxMsg
	deflate bool  // permessage-deflate negotiated: RSV1 allowed on a message's first frame

	hdr  [14]byte // a header split across chunks
	hdrN uint8

	inFrame  bool // header parsed, payload pending
	fin      bool
	op       opcode // opcode of the current frame
	maskPos  uint8
	mask     [4]byte
	frameLen int64 // payload length of the current frame
	left     int64 // payload bytes of the current frame not yet seen

	msgOp         opcode // opText or opBinary while a message is in progress, else 0
	msgCompressed bool
	utf8          utf8Validator
	msg           *[]byte // pooled: the message so far, when not delivered in place
	ctrl          []byte  // a control frame split across chunks
}

// compressedLimit bounds the compressed size of a message: deflate can make
// incompressible data slightly bigger, so allow a margin over maxMsg. The
// decompressed size is checked against maxMsg separately.
func (p *parser) compressedLimit() int64 {
	return p.maxMsg + p.maxMsg>>4 + 128
}

// release gives back the buffers of a message in progress. The parser must
// not be fed afterwards.
func (p *parser) release() {
	putBuf(p.msg)
	p.msg = nil
	p.ctrl = nil
}

// buffered reports how many payload bytes the parser holds between calls.
func (p *parser) buffered() int {
	n := len(p.ctrl)
	if p.msg != nil {
		n += cap(*p.msg)
	}
	return n
}

// feed decodes data, which the parser may modify (payloads are unmasked in
// place), and calls s for every complete message and control frame.
func (p *parser) feed(data []byte, s frameSink) error {
	for len(data) > 0 {
		if !p.inFrame {
			n, err := p.readHeader(data)
			if err != nil {
				return err
			}
			data = data[n:]
			if !p.inFrame {
				return nil // header incomplete
			}
			if p.left == 0 {
				if err := p.payload(nil, s); err != nil {
					return err
				}
			}
			continue
		}
		n := len(data)
		if int64(n) > p.left {
			n = int(p.left)
		}
		if err := p.payload(data[:n], s); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// headerSize returns the full header length implied by the second byte.
func headerSize(b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&bitMask != 0 {
		n += 4
	}
	return n
}

// readHeader consumes header bytes from data and returns how many it used.
// When the header is complete it is validated and p.inFrame is set.
func (p *parser) readHeader(data []byte) (int, error) {
	if p.hdrN == 0 && len(data) >= 2 {
		if err := p.checkStart(data[0], data[1]); err != nil {
			return 0, err
		}
		if need := headerSize(data[1]); len(data) >= need {
			return need, p.parseHeader(data[:need])
		}
	}
	used := 0
	for {
		need := 2
		if p.hdrN >= 2 {
			need = headerSize(p.hdr[1])
		}
		if int(p.hdrN) == need {
			break
		}
		if used == len(data) {
			return used, nil
		}
		k := copy(p.hdr[p.hdrN:need], data[used:])
		used += k
		wasShort := p.hdrN < 2
		p.hdrN += uint8(k)
		if wasShort && p.hdrN >= 2 {
			if err := p.checkStart(p.hdr[0], p.hdr[1]); err != nil {
				return used, err
			}
		}
	}
	n := int(p.hdrN)
	p.hdrN = 0
	return used, p.parseHeader(p.hdr[:n])
}

func protocolError(reason string) error {
	return &protoError{code: CloseProtocolError, reason: reason}
}

// checkStart validates the first two header bytes, so that a bad frame is
// refused before its extended length and mask arrive.
func (p *parser) checkStart(b0, b1 byte) error {
	op := opcode(b0 & 0x0F)
	if b1&bitMask == 0 {
		return protocolError("client frame not masked")
	}
	if b0&(bitRSV2|bitRSV3) != 0 {
		return protocolError("reserved bits RSV2/RSV3 set")
	}
	if op >= opClose {
		switch {
		case op > opPong:
			return protocolError("reserved control opcode")
		case b0&bitRSV1 != 0:
			return protocolError("RSV1 set on a control frame")
		case b0&bitFIN == 0:
			return protocolError("fragmented control frame")
		case b1&0x7F > maxControlPayload:
			return protocolError("control frame payload over 125 bytes")
		}
		return nil
	}
	switch op {
	case opContinuation:
		if p.msgOp == 0 {
			return protocolError("continuation frame without a message in progress")
		}
		if b0&bitRSV1 != 0 {
			return protocolError("RSV1 set on a continuation frame")
		}
	case opText, opBinary:
		if p.msgOp != 0 {
			return protocolError("new data frame inside a fragmented message")
		}
		if b0&bitRSV1 != 0 && !p.deflate {
			return protocolError("RSV1 set without a negotiated extension")
		}
	default:
		return protocolError("reserved data opcode")
	}
	return nil
}

// parseHeader decodes a complete header that passed checkStart.
func (p *parser) parseHeader(h []byte) error {
	b0, b1 := h[0], h[1]
	var length uint64
	i := 2
	switch b1 & 0x7F {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:]))
		i = 4
	case 127:
		length = binary.BigEndian.Uint64(h[2:])
		if length>>63 != 0 {
			return protocolError("64-bit payload length with the top bit set")
		}
		i = 10
	default:
		length = uint64(b1 & 0x7F)
	}
	copy(p.mask[:], h[i:i+4])
	p.maskPos = 0
	p.fin = b0&bitFIN != 0
	p.op = opcode(b0 & 0x0F)
	p.frameLen = int64(length)
	p.left = p.frameLen
	p.inFrame = true
	if p.op >= opClose {
		return nil
	}
	if p.op != opContinuation {
		p.msgOp = p.op
		p.msgCompressed = b0&bitRSV1 != 0
	}
	limit := p.maxMsg
	if p.msgCompressed {
		limit = p.compressedLimit()
	}
	var have int64
	if p.msg != nil {
		have = int64(len(*p.msg))
	}
	if p.frameLen > limit-have {
		return &protoError{code: p.tooBig, reason: "message too big"}
	}
	return nil
}

// payload handles the next chunk of the current frame's payload (nil for an
// empty frame).
func (p *parser) payload(chunk []byte, s frameSink) error {
	p.maskPos = unmask(chunk, p.mask, p.maskPos)
	p.left -= int64(len(chunk))
	done := p.left == 0

	if p.op >= opClose {
		if done && len(p.ctrl) == 0 {
			p.inFrame = false
			return p.deliverControl(chunk, s)
		}
		if p.ctrl == nil {
			p.ctrl = make([]byte, 0, p.frameLen)
		}
		p.ctrl = append(p.ctrl, chunk...)
		if !done {
			return nil
		}
		p.inFrame = false
		ctrl := p.ctrl
		p.ctrl = nil
		return p.deliverControl(ctrl, s)
	}

	text := p.msgOp == opText && !p.msgCompressed
	if done && p.fin && p.msg == nil && int64(len(chunk)) == p.frameLen {
		// The whole message is in this chunk: deliver it in place.
		p.inFrame = false
		if text && !(p.utf8.complete() && utf8.Valid(chunk)) {
			return &protoError{code: CloseInvalidPayload, reason: "text message is not valid UTF-8"}
		}
		op, compressed := p.msgOp, p.msgCompressed
		p.endMessage()
		return s.message(op, compressed, chunk)
	}
	if text && !p.utf8.feed(chunk) {
		return &protoError{code: CloseInvalidPayload, reason: "text message is not valid UTF-8"}
	}
	if len(chunk) > 0 {
		extra := len(chunk)
		if p.fin {
			extra += int(p.left) // reserve the rest of the final frame at once
		}
		p.msg = growBuf(p.msg, extra)
		*p.msg = append(*p.msg, chunk...)
	}
	if !done {
		return nil
	}
	p.inFrame = false
	if !p.fin {
		return nil
	}
	if text && !p.utf8.complete() {
		return &protoError{code: CloseInvalidPayload, reason: "text message ends inside a UTF-8 sequence"}
	}
	var msg []byte
	if p.msg != nil {
		msg = *p.msg
	}
	op, compressed := p.msgOp, p.msgCompressed
	err := s.message(op, compressed, msg)
	p.endMessage()
	return err
}

// endMessage resets the message state and releases its buffer.
func (p *parser) endMessage() {
	putBuf(p.msg)
	p.msg = nil
	p.msgOp = 0
	p.msgCompressed = false
	p.utf8.reset()
}

func (p *parser) deliverControl(payload []byte, s frameSink) error {
	if p.op == opClose {
		if err := checkClosePayload(payload); err != nil {
			return err
		}
	}
	return s.control(p.op, payload)
}

// checkClosePayload validates a received close frame's payload.
func checkClosePayload(b []byte) error {
	switch {
	case len(b) == 0:
		return nil
	case len(b) == 1:
		return protocolError("close frame with a 1-byte payload")
	}
	if !validCloseCode(int(binary.BigEndian.Uint16(b))) {
		return protocolError("invalid close code")
	}
	if !utf8.Valid(b[2:]) {
		return &protoError{code: CloseInvalidPayload, reason: "close reason is not valid UTF-8"}
	}
	return nil
}

// unmask XORs b in place with the masking key, starting at key offset pos,
// and returns the key offset for the next byte.
func unmask(b []byte, key [4]byte, pos uint8) uint8 {
	if len(b) == 0 {
		return pos
	}
	var rk [4]byte
	for j := range rk {
		rk[j] = key[(int(pos)+j)&3]
	}
	k32 := uint64(binary.LittleEndian.Uint32(rk[:]))
	k64 := k32 | k32<<32
	i := 0
	for ; len(b)-i >= 8; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= rk[i&3]
	}
	return uint8((int(pos) + len(b)) & 3)
}
