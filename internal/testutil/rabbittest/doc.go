// Package rabbittest runs a RabbitMQ node owned by one test: Debian's
// rabbitmq-server started with its own node name, Erlang cookie, epmd port,
// data and log directories and plugin list, all in the test's temporary
// directory, listening on random ports of 127.0.0.1. It never touches a
// RabbitMQ service the system runs. A test that needs RabbitMQ is skipped
// when rabbitmq-server is not installed, or fails when CI is set.
package rabbittest
