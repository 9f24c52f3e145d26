package protocol

import "testing"

func TestErrorCodeOf(t *testing.T) {
	for _, c := range []struct {
		frame []byte
		code  Code
		ok    bool
	}{
		{ErrorFrame(Errorf(CodeInvalidPayload, "x")), CodeInvalidPayload, true},
		{ErrorFrame(&Error{Code: CodeIdentifyFailed, Message: "m", ID: `a","data":{"code":1`}), CodeIdentifyFailed, true}, // fatal: a DISCONNECT
		{ErrorFrame(&Error{Code: CodeMessageTooBig, ID: "m1"}), CodeMessageTooBig, true},
		{PongFrame("p"), 0, false},
		{ReceiptFrame("r", Receipt{Delivered: 1}), 0, false},
		{IdentifiedFrame("i", "s", "g", 1000), 0, false},
		{[]byte(`{"op":66,"data":{"code":4002}}`), 0, false},
		{nil, 0, false},
	} {
		code, ok := ErrorCodeOf(c.frame)
		if code != c.code || ok != c.ok {
			t.Errorf("%s: %v %v, want %v %v", c.frame, code, ok, c.code, c.ok)
		}
	}
}
