// Package brokertest is the conformance suite every Ferry broker engine must
// pass: memory, Redis, NATS and RabbitMQ run the same tests, so the
// guarantees written on broker.Broker and its optional capabilities mean the
// same thing everywhere.
//
// An engine's test calls Run with a Factory:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, brokertest.Factory{
//			New: func(t testing.TB, nodeID string) broker.Broker {
//				return memory.New(memory.Config{NodeID: nodeID})
//			},
//		})
//	}
//
// The suite starts every broker it gets from the factory and closes it when
// the test ends. Each test uses channel names, users and keys of its own
// (with a random part per Run), so engines with a shared backend may run
// the tests in parallel and against a server used by other runs.
//
// Expiry is tested with short real TTLs and polling, never with a sleep
// followed by an assertion, and no test asserts how long anything takes.
// A few tests show that something was NOT delivered by delivering a later
// message on the same channel (or the same control stream) and waiting for
// it; they rely on the per-channel order the broker guarantees.
package brokertest
