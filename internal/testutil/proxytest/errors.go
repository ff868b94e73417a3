package proxytest

import "errors"

// Errors of the renderers: the template lacks what a test must replace.
var (
	// ErrNoUpstream: no upstream server lines (nginx) or backend server
	// lines (HAProxy) to replace with the backends.
	ErrNoUpstream = errors.New("template has no upstream server lines")
	// ErrNoListen: no listen (nginx) or bind (HAProxy) line to point at the
	// test's port.
	ErrNoListen = errors.New("template has no listen (nginx) or bind (HAProxy) line")
	// ErrNoBackends: the caller gave no backends.
	ErrNoBackends = errors.New("no backends given")
)

// errExited says that the proxy exited before it served.
var errExited = errors.New("proxy exited at start")
