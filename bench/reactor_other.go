//go:build !linux

package bench

import (
	"errors"
	"syscall"
)

// reactorAvailable reports whether ClientReactor works on this system.
const reactorAvailable = false

type reactor struct{}

func newReactor(*group, int) (*reactor, error) {
	return nil, errors.New("the reactor client needs Linux")
}

func (*reactor) add(*conn) error      { return errors.New("no reactor") }
func (*reactor) halt()                {}
func (*reactor) readCtxs() []*readCtx { return nil }

func writeFD(int, []byte) {}
func closeFD(int)         {}

func bindNoPort(string, string, syscall.RawConn) error { return nil }
