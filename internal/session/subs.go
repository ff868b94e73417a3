package session

// A session's subscriptions are a slice searched in order: most connections
// subscribe to one channel or a few, and a map's smallest table costs a few
// hundred bytes per connection. Past subIndexAt subscriptions a map in the
// session's extra indexes them as well. The session's lock guards both.

// subIndexAt is the most subscriptions searched without the map.
const subIndexAt = 8

// subFor returns the session's subscription to ch, or nil. The caller
// holds s.mu.
func (s *Session) subFor(ch string) *subscription {
	if s.extra != nil && s.extra.subIdx != nil {
		return s.extra.subIdx[ch]
	}
	for _, sub := range s.subs {
		if sub.ch == ch {
			return sub
		}
	}
	return nil
}

// addSubLocked adds sub, whose channel the session must not be subscribed
// to yet.
func (s *Session) addSubLocked(sub *subscription) {
	s.subs = append(s.subs, sub)
	switch {
	case s.extra != nil && s.extra.subIdx != nil:
		s.extra.subIdx[sub.ch] = sub
	case len(s.subs) > subIndexAt:
		idx := make(map[string]*subscription, len(s.subs))
		for _, x := range s.subs {
			idx[x.ch] = x
		}
		s.extraLocked().subIdx = idx
	}
}

// removeSubLocked removes sub and reports whether the session had it.
func (s *Session) removeSubLocked(sub *subscription) bool {
	for i, x := range s.subs {
		if x != sub {
			continue
		}
		last := len(s.subs) - 1
		s.subs[i] = s.subs[last]
		s.subs[last] = nil
		s.subs = s.subs[:last]
		if len(s.subs) == 0 {
			s.subs = nil
		}
		if s.extra != nil && s.extra.subIdx != nil {
			delete(s.extra.subIdx, sub.ch)
			if len(s.subs) <= subIndexAt/2 {
				s.extra.subIdx = nil // back to searching: the map's memory goes
			}
		}
		return true
	}
	return false
}

// takeSubsLocked removes every subscription and returns them.
func (s *Session) takeSubsLocked() []*subscription {
	subs := s.subs
	s.subs = nil
	if s.extra != nil {
		s.extra.subIdx = nil
	}
	return subs
}
