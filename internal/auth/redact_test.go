package auth

import "testing"

func TestRedactQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/v1/ws", "/v1/ws"},
		{"/v1/ws?", "/v1/ws?"},
		{"/v1/ws?token=abc.def.ghi", "/v1/ws?token=REDACTED"},
		{"/v1/sse?ticket=Zm9v&x=1", "/v1/sse?ticket=REDACTED&x=1"},
		{"/v1/ws?a=1&TOKEN=abc&b=2&Ticket=t", "/v1/ws?a=1&TOKEN=REDACTED&b=2&Ticket=REDACTED"},
		{"/v1/ws?%74oken=abc", "/v1/ws?%74oken=REDACTED"},
		{"/v1/ws?token=a&token=b", "/v1/ws?token=REDACTED&token=REDACTED"},
		{"/v1/ws?a=1;token=secret", "/v1/ws?a=1;token=REDACTED"},
		{"/v1/ws?token=", "/v1/ws?token=REDACTED"},
		{"/v1/ws?tokens=keep&xtoken=keep", "/v1/ws?tokens=keep&xtoken=keep"},
		{"/v1/ws?token", "/v1/ws?token"},
		{"/v1/ws?q=token%3Dsecret", "/v1/ws?q=token%3Dsecret"},
		{"wss://h:8080/v1/ws?token=abc#frag", "wss://h:8080/v1/ws?token=REDACTED#frag"},
		{"https://h/?z=9&ticket=t1&a=%zz", "https://h/?z=9&ticket=REDACTED&a=%zz"},
	}
	for _, tt := range tests {
		if got := RedactQuery(tt.in); got != tt.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
