package auth

import "strings"

// subPlaceholder stands for the user id in a channel pattern.
const subPlaceholder = "{sub}"

// MatchPattern reports whether channel matches pattern, a glob in which
// `*` matches any run of characters (`:` included, possibly empty) and
// `{sub}` stands for sub, the user id. Every other character, sub's
// included, matches only itself: a user id holding `*` or `{sub}` cannot
// widen the match. A pattern that uses `{sub}` never matches when sub is
// empty (anonymous users own no personal channels).
//
// Matching takes time O(len(pattern) * len(channel)) at worst, without
// backtracking blow-ups, and does not allocate.
func MatchPattern(pattern, channel, sub string) bool {
	if sub == "" && strings.Contains(pattern, subPlaceholder) {
		return false
	}
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		n, ok := segMatch(pattern, channel, sub)
		return ok && n == len(channel)
	}
	// Leading segment: a prefix of channel.
	n, ok := segMatch(pattern[:star], channel, sub)
	if !ok {
		return false
	}
	pos := n
	rest := pattern[star+1:]
	for {
		star = strings.IndexByte(rest, '*')
		if star < 0 {
			break
		}
		seg := rest[:star]
		rest = rest[star+1:]
		if seg == "" {
			continue
		}
		// Middle segments: leftmost occurrence, which leaves the most room
		// for what follows.
		found := false
		for i := pos; i <= len(channel); i++ {
			if n, ok := segMatch(seg, channel[i:], sub); ok {
				pos = i + n
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	// Trailing segment: a suffix of what is left.
	tail := segLen(rest, sub)
	if len(channel)-pos < tail {
		return false
	}
	n, ok = segMatch(rest, channel[len(channel)-tail:], sub)
	return ok && n == tail
}

// segMatch reports whether the star-free segment seg, with {sub} expanded
// to sub, is a prefix of s, and how many bytes of s it covers.
func segMatch(seg, s, sub string) (int, bool) {
	i := 0
	for len(seg) > 0 {
		if strings.HasPrefix(seg, subPlaceholder) {
			if !strings.HasPrefix(s[i:], sub) {
				return 0, false
			}
			i += len(sub)
			seg = seg[len(subPlaceholder):]
			continue
		}
		if i >= len(s) || s[i] != seg[0] {
			return 0, false
		}
		i++
		seg = seg[1:]
	}
	return i, true
}

// segLen is the length of seg with {sub} expanded.
func segLen(seg, sub string) int {
	k := strings.Count(seg, subPlaceholder)
	return len(seg) + k*(len(sub)-len(subPlaceholder))
}

// CanSubscribe reports whether the token's channels claim lets its holder
// subscribe to ch. named is false when the token has no subscribe list at
// all; the server then applies its namespace rules instead.
func (c *Claims) CanSubscribe(ch string) (allowed bool, named bool) {
	if c == nil || c.Channels == nil || c.Channels.Subscribe == nil {
		return false, false
	}
	return matchAny(c.Channels.Subscribe, ch, c.Subject), true
}

// CanPublish reports whether the token's channels claim lets its holder
// publish to ch. named is false when the token has no publish list at all;
// the server then applies its namespace rules instead.
func (c *Claims) CanPublish(ch string) (allowed bool, named bool) {
	if c == nil || c.Channels == nil || c.Channels.Publish == nil {
		return false, false
	}
	return matchAny(c.Channels.Publish, ch, c.Subject), true
}

func matchAny(patterns []string, ch, sub string) bool {
	for _, p := range patterns {
		if MatchPattern(p, ch, sub) {
			return true
		}
	}
	return false
}
