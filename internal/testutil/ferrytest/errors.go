package ferrytest

import "errors"

// errExited says that a started node exited before it was ready (most
// likely its port was taken); Start then tries another port.
var errExited = errors.New("ferry exited before it was ready")
