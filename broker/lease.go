package broker

import (
	"errors"
	"fmt"
	"time"
)

// CheckLease refuses a Locker call no engine can honour: an empty owner
// (it could not be told from no owner) and a lease without an end (a
// crashed holder would keep the key forever). Engines call it first.
func CheckLease(owner string, ttl time.Duration) error {
	switch {
	case owner == "":
		return errors.New("lock owner is empty")
	case ttl <= 0:
		return fmt.Errorf("lock lease %v: want > 0", ttl)
	}
	return nil
}
