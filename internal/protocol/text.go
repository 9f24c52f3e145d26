package protocol

// MaxDepth is the deepest nesting of objects and arrays a message may have,
// the envelope itself counting as one level (so data may nest 63 levels).
// Common strict decoders at the recipients stop between 100 (Ruby's JSON)
// and 128 (serde_json) levels, and encoding/json at 10,000: a message
// within MaxDepth decodes everywhere.
const MaxDepth = 64

// checkText refuses two kinds of well-formed JSON that recipients cannot all
// decode: nesting deeper than MaxDepth, and string escapes of lone UTF-16
// surrogates ("\ud800" without its low half, or "\udc00" alone), which
// RFC 8259 leaves undefined and I-JSON (RFC 7493) forbids. It checks nothing
// else: the JSON decoder does. body is valid UTF-8.
func checkText(body []byte) *Error {
	depth := 0
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			if depth++; depth > MaxDepth {
				return Errorf(CodeInvalidPayload, "message nests deeper than %d levels of objects and arrays", MaxDepth)
			}
		case '}', ']':
			depth--
		case '"':
			end, err := checkString(body, i+1)
			if err != nil {
				return err
			}
			i = end
		}
	}
	return nil
}

// checkString scans the string whose contents start at body[i] and returns
// the index of its closing quote (or len(body) if it has none).
func checkString(body []byte, i int) (int, *Error) {
	for ; i < len(body); i++ {
		switch body[i] {
		case '"':
			return i, nil
		case '\\':
			if i+1 >= len(body) || body[i+1] != 'u' {
				i++ // skip the escaped character
				continue
			}
			r, ok := hex4(body, i+2)
			if !ok {
				i++ // malformed: the JSON decoder reports it
				continue
			}
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return 0, loneSurrogate(r)
			case r >= 0xD800 && r <= 0xDBFF:
				// A high surrogate must be followed at once by a low one.
				if i+7 >= len(body) || body[i+6] != '\\' || body[i+7] != 'u' {
					return 0, loneSurrogate(r)
				}
				low, ok := hex4(body, i+8)
				if !ok || low < 0xDC00 || low > 0xDFFF {
					return 0, loneSurrogate(r)
				}
				i += 11 // both escapes
			default:
				i += 5
			}
		}
	}
	return i, nil
}

func loneSurrogate(r rune) *Error {
	return Errorf(CodeInvalidPayload, `string escape \u%04x is a lone UTF-16 surrogate, which is not a character`, r)
}

// hex4 decodes the four hex digits at body[i:i+4].
func hex4(body []byte, i int) (rune, bool) {
	if i+4 > len(body) {
		return 0, false
	}
	var r rune
	for _, c := range body[i : i+4] {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}
