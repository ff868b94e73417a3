package rabbitmq

import (
	"fmt"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// minVersion is the first RabbitMQ with stream queues.
var minVersion = [2]int{3, 9}

// serverVersion reads the version RabbitMQ announced on conn, as
// major and minor numbers; ok is false when it announced none readable.
func serverVersion(conn *amqp.Connection) (major, minor int, ok bool) {
	v, _ := conn.Properties["version"].(string)
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// checkVersion refuses a server without stream queues. A server that does
// not say its version is given the benefit of the doubt: declaring a
// stream then fails with RabbitMQ's own error.
func checkVersion(conn *amqp.Connection) error {
	major, minor, ok := serverVersion(conn)
	if !ok {
		return nil
	}
	if major < minVersion[0] || (major == minVersion[0] && minor < minVersion[1]) {
		return fmt.Errorf("rabbitmq broker: RabbitMQ %d.%d has no stream queues; version %d.%d or later is needed",
			major, minor, minVersion[0], minVersion[1])
	}
	return nil
}
