// Command devices simulates the sensor network: N devices that each take
// readings and send them to sensors:readings as one end-to-end encrypted
// batch (the SDK's AES-GCM envelope; the node relays it unread).
//
// Two modes, for comparing the node's load at the same reading rate:
//
//	-mode short   each device connects, publishes its batch, disconnects,
//	              then sleeps until its next batch (the seed's scenario 2)
//	-mode always  each device keeps its connection open between batches
//
// It prints a JSON summary (devices, batches, readings, failures) at the end.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/auth"
)

// channel is where every device publishes.
const channel = "sensors:readings"

// Reading is one measurement of one device.
type Reading struct {
	Seq   int     `json:"seq"`
	TempC float64 `json:"temp_c"`
	RH    float64 `json:"rh"`
	PM25  float64 `json:"pm25"`
	At    int64   `json:"at"` // Unix ms
}

// Batch is what a device publishes (encrypted) at a time.
type Batch struct {
	Device   string    `json:"device"`
	Readings []Reading `json:"readings"`
}

type options struct {
	ferry, secret, key, mode string
	devices, batches, per    int
	every                    time.Duration
	parallel                 int
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devices:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	fs.StringVar(&o.ferry, "ferry", "http://127.0.0.1:8080", "base URL of the Ferry node")
	fs.StringVar(&o.secret, "secret", os.Getenv("FERRY_TOKEN_HMAC_SECRET"), "HS256 secret for the devices' tokens (default $FERRY_TOKEN_HMAC_SECRET)")
	fs.StringVar(&o.key, "key", os.Getenv("SENSORS_KEY"), "the readings' AES key, base64 of 16/24/32 bytes (default $SENSORS_KEY)")
	fs.StringVar(&o.mode, "mode", "short", "short: connect, publish, close; always: keep the connection")
	fs.IntVar(&o.devices, "devices", 1000, "how many devices")
	fs.IntVar(&o.batches, "batches", 1, "batches per device")
	fs.IntVar(&o.per, "readings", 5, "readings per batch")
	fs.DurationVar(&o.every, "every", 10*time.Second, "time between a device's batches")
	fs.IntVar(&o.parallel, "parallel", 100, "most devices connecting at once (short mode)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := base64.StdEncoding.DecodeString(o.key)
	switch {
	case err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32):
		return errors.New("--key: want base64 of 16, 24 or 32 bytes (set SENSORS_KEY)")
	case o.secret == "":
		return errors.New("no token secret: set FERRY_TOKEN_HMAC_SECRET or --secret")
	case o.mode != "short" && o.mode != "always":
		return fmt.Errorf("--mode %q: want short or always", o.mode)
	case o.devices < 1 || o.batches < 1 || o.per < 1 || o.parallel < 1:
		return errors.New("--devices, --batches, --readings and --parallel must be >= 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var s summary
	start := time.Now()
	gate := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i := range o.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &device{id: fmt.Sprintf("dev-%05d", i), o: &o, key: client.E2EKey{ID: "k1", Key: key}, gate: gate, s: &s}
			d.run(ctx)
		}()
	}
	wg.Wait()
	out := map[string]any{"mode": o.mode, "devices": o.devices, "batches": s.batches.Load(), "readings": s.readings.Load(), "failures": s.failures.Load(), "seconds": time.Since(start).Seconds()}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	if s.failures.Load() > 0 {
		return fmt.Errorf("%d batches failed", s.failures.Load())
	}
	return nil
}

type summary struct {
	batches, readings, failures atomic.Int64
}

type device struct {
	id   string
	o    *options
	key  client.E2EKey
	gate chan struct{}
	s    *summary
	seq  int
	conn *client.Client // kept between batches in mode always
}

func (d *device) run(ctx context.Context) {
	defer func() {
		if d.conn != nil {
			_ = d.conn.Close()
		}
	}()
	// Spread the first batches over one interval, as real devices would.
	next := time.Now().Add(time.Duration(rand.Int64N(int64(d.o.every))))
	if d.o.batches == 1 {
		next = time.Now()
	}
	for b := 0; b < d.o.batches && ctx.Err() == nil; b++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		next = next.Add(d.o.every)
		if err := d.send(ctx, d.take()); err != nil {
			d.s.failures.Add(1)
			fmt.Fprintf(os.Stderr, "%s: %v\n", d.id, err)
			continue
		}
		d.s.batches.Add(1)
		d.s.readings.Add(int64(d.o.per))
	}
}

// take makes one batch of readings.
func (d *device) take() Batch {
	b := Batch{Device: d.id}
	for range d.o.per {
		d.seq++
		b.Readings = append(b.Readings, Reading{Seq: d.seq, TempC: 15 + rand.Float64()*10, RH: 40 + rand.Float64()*30, PM25: rand.Float64() * 40, At: time.Now().UnixMilli()})
	}
	return b
}

// send publishes b sealed; the idempotency key makes a retried batch count once.
func (d *device) send(ctx context.Context, b Batch) error {
	env, err := client.SealE2E(channel, d.key, b)
	if err != nil {
		return err
	}
	c := d.conn
	if c == nil {
		select {
		case d.gate <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-d.gate }()
		tok, err := auth.Mint([]byte(d.o.secret), d.id, time.Hour, &auth.ChannelsClaim{Publish: []string{channel}})
		if err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if c, err = client.Dial(dctx, d.o.ferry, client.Config{Token: tok, ClientName: "sensor/1"}); err != nil {
			return err
		}
		if d.o.mode == "always" {
			d.conn = c
		} else {
			defer c.Close()
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = c.Publish(pctx, channel, env, client.WithKey(fmt.Sprintf("%s-%d", d.id, d.seq)))
	return err
}
