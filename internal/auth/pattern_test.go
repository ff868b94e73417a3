package auth

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, channel, sub string
		want                  bool
	}{
		{"*", "", "", true},
		{"*", "room:1", "", true},
		{"*", "a:b:c", "alice", true},
		{"room:*", "room:1", "", true},
		{"room:*", "room:", "", true},
		{"room:*", "room:a:b", "", true},
		{"room:*", "room", "", false},
		{"room:*", "rooms:1", "", false},
		{"room:*", "xroom:1", "", false},
		{"room:1", "room:1", "", true},
		{"room:1", "room:10", "", false},
		{"room:1", "room:", "", false},
		{"*:admin", "ns:admin", "", true},
		{"*:admin", "ns:admins", "", false},
		{"a*b*c", "abc", "", true},
		{"a*b*c", "a-b-c", "", true},
		{"a*b*c", "a-c-b", "", false},
		{"a*b*c", "abcbc", "", true},
		{"a*b*c", "abcb", "", false},
		{"a**b", "ab", "", true},
		{"*a*", "bab", "", true},
		{"*a*", "bbb", "", false},
		{"ab*ba", "aba", "", false}, // the prefix and suffix may not overlap
		{"ab*ba", "abba", "", true},
		{"", "", "", true},
		{"", "x", "", false},

		{"user:{sub}", "user:alice", "alice", true},
		{"user:{sub}", "user:bob", "alice", false},
		{"user:{sub}", "user:alice2", "alice", false},
		{"user:{sub}", "user:alic", "alice", false},
		{"user:{sub}:*", "user:alice:inbox", "alice", true},
		{"user:{sub}:*", "user:alice", "alice", false},
		{"user:{sub}:*", "user:bob:inbox", "alice", false},
		{"*:{sub}", "dm:alice", "alice", true},
		{"dm:{sub}:{sub}", "dm:al:al", "al", true},
		{"dm:{sub}:{sub}", "dm:al:bo", "al", false},
		{"{sub}", "alice", "alice", true},
		{"room:{id}", "room:{id}", "x", true}, // only {sub} is special
		{"room:{id}", "room:7", "x", false},
		{"{su", "{su", "x", true},

		// An empty user id owns nothing.
		{"user:{sub}", "user:", "", false},
		{"user:{sub}*", "user:x", "", false},
		// A user id with glob characters is literal: it cannot widen the
		// match.
		{"user:{sub}", "user:*", "*", true},
		{"user:{sub}", "user:bob", "*", false},
		{"user:{sub}", "user:", "*", false},
		{"user:{sub}:inbox", "user:bob:inbox", "*", false},
		{"user:{sub}", "user:bob", "b*", false},
		{"user:{sub}", "user:b*", "b*", true},
		{"user:{sub}", "user:{sub}", "{sub}", true},
		{"user:{sub}", "user:x", "{sub}", false},
		{"user:{sub}", "user:alice:other", "alice:*", false},
		{"user:{sub}", "user:alice:*", "alice:*", true},
	}
	for _, tt := range tests {
		if got := MatchPattern(tt.pattern, tt.channel, tt.sub); got != tt.want {
			t.Errorf("MatchPattern(%q, %q, sub %q) = %v, want %v", tt.pattern, tt.channel, tt.sub, got, tt.want)
		}
	}
}

func TestCanSubscribePublish(t *testing.T) {
	tests := []struct {
		name              string
		claims            *Claims
		channel           string
		wantSub, namedSub bool
		wantPub, namedPub bool
	}{
		{name: "nil claims", claims: nil, channel: "a"},
		{name: "no channels claim", claims: &Claims{Subject: "u"}, channel: "a"},
		{name: "subscribe only", claims: &Claims{Subject: "u", Channels: &ChannelsClaim{Subscribe: []string{"room:*"}}},
			channel: "room:1", wantSub: true, namedSub: true},
		{name: "subscribe list misses", claims: &Claims{Subject: "u", Channels: &ChannelsClaim{Subscribe: []string{"room:*"}}},
			channel: "chat:1", namedSub: true},
		{name: "empty lists grant nothing", claims: &Claims{Subject: "u", Channels: &ChannelsClaim{Subscribe: []string{}, Publish: []string{}}},
			channel: "room:1", namedSub: true, namedPub: true},
		{name: "publish own channel", claims: &Claims{Subject: "u", Channels: &ChannelsClaim{Publish: []string{"user:{sub}"}}},
			channel: "user:u", wantPub: true, namedPub: true},
		{name: "publish someone else's", claims: &Claims{Subject: "u", Channels: &ChannelsClaim{Publish: []string{"user:{sub}"}}},
			channel: "user:v", namedPub: true},
		{name: "second pattern matches", claims: &Claims{Subject: "u", Channels: &ChannelsClaim{Subscribe: []string{"a:*", "b:*"}, Publish: []string{"*"}}},
			channel: "b:1", wantSub: true, namedSub: true, wantPub: true, namedPub: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, named := tt.claims.CanSubscribe(tt.channel)
			if ok != tt.wantSub || named != tt.namedSub {
				t.Errorf("CanSubscribe = %v, %v; want %v, %v", ok, named, tt.wantSub, tt.namedSub)
			}
			ok, named = tt.claims.CanPublish(tt.channel)
			if ok != tt.wantPub || named != tt.namedPub {
				t.Errorf("CanPublish = %v, %v; want %v, %v", ok, named, tt.wantPub, tt.namedPub)
			}
		})
	}
}

func TestMatchPatternDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		MatchPattern("user:{sub}:*:inbox*", "user:alice:x:y:inbox:1", "alice")
	})
	if allocs != 0 {
		t.Fatalf("MatchPattern allocates %v times per call", allocs)
	}
}

// patternOracle is a slow, obviously right matcher: the pattern turned
// into an anchored regular expression.
func patternOracle(tb testing.TB, pattern, channel, sub string) bool {
	tb.Helper()
	if sub == "" && strings.Contains(pattern, subPlaceholder) {
		return false
	}
	segs := strings.Split(pattern, "*")
	for i, s := range segs {
		segs[i] = regexp.QuoteMeta(strings.ReplaceAll(s, subPlaceholder, sub))
	}
	re, err := regexp.Compile(`(?s)\A` + strings.Join(segs, ".*") + `\z`)
	if err != nil {
		tb.Fatalf("oracle regexp: %v", err)
	}
	return re.MatchString(channel)
}

func FuzzMatchPattern(f *testing.F) {
	seeds := [][3]string{
		{"*", "", ""}, {"room:*", "room:1", ""}, {"user:{sub}", "user:alice", "alice"},
		{"user:{sub}", "user:*", "*"}, {"a*b*c", "abcbc", ""}, {"ab*ba", "aba", ""},
		{"{{sub}}", "{x}", "x"}, {"*{sub}*", "xx", "x"}, {"**", "a", "{sub}"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, pattern, channel, sub string) {
		got := MatchPattern(pattern, channel, sub)
		if !MatchPattern("*", channel, sub) {
			t.Fatalf("* does not match %q", channel)
		}
		if MatchPattern(pattern, channel, sub) != got {
			t.Fatal("not deterministic")
		}
		if !utf8.ValidString(pattern) || !utf8.ValidString(channel) || !utf8.ValidString(sub) {
			return // the regexp oracle works on runes
		}
		if want := patternOracle(t, pattern, channel, sub); got != want {
			t.Fatalf("MatchPattern(%q, %q, sub %q) = %v, oracle says %v", pattern, channel, sub, got, want)
		}
	})
}

func BenchmarkMatchPattern(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		MatchPattern("user:{sub}:*:inbox*", "user:alice:x:y:inbox:1", "alice")
	}
}
