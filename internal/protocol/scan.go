package protocol

// envelope holds the raw JSON values of the members of a message that
// Parse reads, each nil when the member is absent.
type envelope struct {
	id, op, event, data, intent, ack []byte
}

// scanEnvelope reads the members of a message without encoding/json, which
// would allocate a map and a copy of every value. It reports false, having
// decided nothing, unless body is well-formed JSON (RFC 8259, as
// encoding/json accepts it) holding one object whose member names have no
// escapes and whose members that Parse reads appear once; Parse then
// leaves body to encoding/json, which says what is wrong, or which
// repeated member counts (the last). The values are body's bytes, exactly
// what encoding/json would copy. body is valid UTF-8.
func scanEnvelope(body []byte) (env envelope, ok bool) {
	s := scanner{b: body}
	s.space()
	if !s.eat('{') {
		return envelope{}, false
	}
	s.space()
	if !s.eat('}') {
		for {
			name, value, ok := s.member(1)
			if !ok {
				return envelope{}, false
			}
			var slot *[]byte
			switch string(name) {
			case "id":
				slot = &env.id
			case "op":
				slot = &env.op
			case "event":
				slot = &env.event
			case "data":
				slot = &env.data
			case "intent":
				slot = &env.intent
			case "ack":
				slot = &env.ack
			}
			if slot != nil {
				if *slot != nil {
					return envelope{}, false
				}
				*slot = value
			}
			if !s.next('}') {
				if s.failed {
					return envelope{}, false
				}
				break
			}
		}
	}
	s.space()
	return env, s.i == len(body)
}

// scanIntent reads the target and identifier members (nil when absent) of
// raw, a well-formed JSON object. It reports false, having decided nothing,
// when a member name has escapes or target or identifier appears twice.
func scanIntent(raw []byte) (target, identifier []byte, ok bool) {
	s := scanner{b: raw}
	if !s.eat('{') {
		return nil, nil, false
	}
	s.space()
	if s.eat('}') {
		return nil, nil, s.i == len(raw)
	}
	for {
		name, value, ok := s.member(2)
		if !ok {
			return nil, nil, false
		}
		switch string(name) {
		case "target":
			if target != nil {
				return nil, nil, false
			}
			target = value
		case "identifier":
			if identifier != nil {
				return nil, nil, false
			}
			identifier = value
		}
		if !s.next('}') {
			if s.failed {
				return nil, nil, false
			}
			return target, identifier, s.i == len(raw)
		}
	}
}

// scanner reads JSON text from b[i:]. Its methods report false for
// anything that is not well-formed, or that they do not handle.
type scanner struct {
	b      []byte
	i      int
	failed bool // set by next
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// next reads what follows a member or an element: a comma and the space
// after it (true), or the closing byte (false). Anything else sets failed
// and returns false.
func (s *scanner) next(closing byte) bool {
	s.space()
	if s.eat(',') {
		s.space()
		return true
	}
	if !s.eat(closing) {
		s.failed = true
	}
	return false
}

// member reads one member of an object at nesting depth: a name without
// escapes, the colon, and the value, which it checks.
func (s *scanner) member(depth int) (name, value []byte, ok bool) {
	if !s.eat('"') {
		return nil, nil, false
	}
	start := s.i
	for {
		if s.i >= len(s.b) {
			return nil, nil, false
		}
		c := s.b[s.i]
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 {
			return nil, nil, false
		}
		s.i++
	}
	name = s.b[start:s.i]
	s.i++
	s.space()
	if !s.eat(':') {
		return nil, nil, false
	}
	s.space()
	start = s.i
	if !s.value(depth + 1) {
		return nil, nil, false
	}
	return name, s.b[start:s.i], true
}

// value checks one JSON value at nesting depth and moves past it.
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		if depth > MaxDepth {
			return false
		}
		s.i++
		s.space()
		if s.eat('}') {
			return true
		}
		for {
			if !s.string() {
				return false
			}
			s.space()
			if !s.eat(':') {
				return false
			}
			s.space()
			if !s.value(depth + 1) {
				return false
			}
			if !s.next('}') {
				return !s.failed
			}
		}
	case c == '[':
		if depth > MaxDepth {
			return false
		}
		s.i++
		s.space()
		if s.eat(']') {
			return true
		}
		for {
			if !s.value(depth + 1) {
				return false
			}
			if !s.next(']') {
				return !s.failed
			}
		}
	case c == '"':
		return s.string()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// string checks a JSON string and moves past it.
func (s *scanner) string() bool {
	if !s.eat('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if _, ok := hex4(s.b, s.i+2); !ok {
					return false
				}
				s.i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			s.i++
		}
	}
	return false
}

// number checks a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.i < len(s.b) && '1' <= s.b[s.i] && s.b[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.eat('.') && !s.digits() {
		return false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits moves past one or more digits, reporting false if there is none.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
