package rabbitmq

import (
	"context"
	"errors"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"amqp://guest:guest@127.0.0.1:5672/", true},
		{"amqps://user:secret@rabbit.example/vhost", true},
		{"amqp://127.0.0.1", true},
		{"redis://127.0.0.1:6379/0", false},
		{"amqp://", false},
		{"amqp://user:secret@[::1", false},
		{"127.0.0.1:5672", false},
	}
	for _, tc := range tests {
		err := checkURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("checkURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidURL) {
				t.Errorf("checkURL(%q) = %v, want ErrInvalidURL", tc.url, err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("checkURL(%q) repeats the password: %v", tc.url, err)
			}
		}
		if IsURL(tc.url) && !strings.HasPrefix(tc.url, "amqp") {
			t.Errorf("IsURL(%q) = true", tc.url)
		}
	}
}

func TestNewBadURL(t *testing.T) {
	if _, err := New(context.Background(), Config{URL: "http://x"}); !errors.Is(err, ErrInvalidURL) {
		t.Fatalf("New with an http URL: %v, want ErrInvalidURL", err)
	}
}

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		version string
		ok      bool
	}{
		{"3.10.8", true},
		{"3.9.0", true},
		{"4.0.1", true},
		{"3.8.19", false},
		{"2.8.7", false},
		{"", true}, // unknown: let RabbitMQ say it
	}
	for _, tc := range tests {
		conn := &amqp.Connection{Properties: amqp.Table{"version": tc.version}}
		if err := checkVersion(conn); (err == nil) != tc.ok {
			t.Errorf("checkVersion(%q) = %v, want ok=%v", tc.version, err, tc.ok)
		}
	}
}
