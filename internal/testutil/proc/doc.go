// Package proc holds the process plumbing shared by the test helpers that
// run real programs (redistest, ferrytest, proxytest): starting a command
// with its output in a log file, waiting until it is ready while noticing
// an early exit, stopping it with SIGTERM and then SIGKILL, reading the end
// of a log, picking a free port, and finding the binary a test needs
// (skipping the test when it is missing, or failing it when CI is set).
//
// On Linux a started process is killed by the kernel when the test process
// dies (the parent-death signal), so an interrupted test run leaves nothing
// behind. With Config.Group it also gets a process group of its own, and
// its signals go to the whole group, so that worker processes (nginx's, for
// example) are stopped with it.
package proc
