package client

import (
	"encoding/json"
	"strconv"
)

// Op is an op code of the envelope (docs/PROTOCOL.md).
type Op int

// The op codes of protocol v1 and its extensions.
const (
	OpEvent      Op = 0 // route data to the intent's targets
	OpIdentify   Op = 1 // authenticate, or "who am I"; the server's answer
	OpDisconnect Op = 2 // close me (client) / you are being closed (server)
	OpPing       Op = 3 // the receiver answers PONG
	OpPong       Op = 4 // answer to PING
	OpReply      Op = 5 // routed like EVENT; answers an EVENT
	OpError      Op = 6 // a non-fatal error (server → client)
	OpReceipt    Op = 7 // the delivery receipt of a message sent with ack (server → client)
)

var opNames = [...]string{"EVENT", "IDENTIFY", "DISCONNECT", "PING", "PONG", "REPLY", "ERROR", "RECEIPT"}

// String returns the op's name, such as "EVENT", or "OP(9)" for an unknown op.
func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "OP(" + strconv.Itoa(int(o)) + ")"
}

// Target is where an EVENT or REPLY goes.
type Target string

// The intent targets.
const (
	TargetGlobal Target = "GLOBAL" // every identified connection but the sender
	TargetGroup  Target = "GROUP"  // every identified connection of a group but the sender
	TargetDirect Target = "DIRECT" // the one connection of a service id
)

// Intent says where a message goes. Build one with Global, Group or Direct.
type Intent struct {
	Target Target `json:"target"`
	// Identifier is a group name for GROUP, a service id for DIRECT, and
	// empty for GLOBAL.
	Identifier string `json:"identifier,omitempty"`
}

// Global returns the intent of a message to every identified service but
// the sender.
func Global() Intent { return Intent{Target: TargetGlobal} }

// Group returns the intent of a message to every service of a group but the
// sender. A group name is 1 to 64 characters of A-Z a-z 0-9 . _ : -.
func Group(name string) Intent { return Intent{Target: TargetGroup, Identifier: name} }

// Direct returns the intent of a message to the one service whose service
// id is serviceID (what its ID method returns, or a message's Source.ID).
func Direct(serviceID string) Intent { return Intent{Target: TargetDirect, Identifier: serviceID} }

// Source is the sender of a delivered message, as the server stamped it.
type Source struct {
	// ID is the sender's service id: Direct(ID) reaches it while that
	// connection lasts.
	ID    string `json:"id"`
	Group string `json:"group"`
}

// Message is an EVENT or a REPLY this client received.
type Message struct {
	// Op is OpEvent or OpReply.
	Op Op
	// ID is the message id: the server assigns one to an EVENT sent
	// without; an answer keeps the id of the EVENT it answers.
	ID string
	// Event is the event name; a REPLY may have none.
	Event string
	// Data is the "data" value exactly as sent, or nil when absent.
	Data json.RawMessage
	// Intent is the intent the server routed the message on.
	Intent Intent
	// Source is the sender.
	Source Source
}

// Decode unmarshals the message's data into v, as json.Unmarshal does. Data
// that is absent decodes as JSON null.
func (m *Message) Decode(v any) error {
	if m.Data == nil {
		return json.Unmarshal([]byte("null"), v)
	}
	return json.Unmarshal(m.Data, v)
}

// Receipt is a delivery receipt: what became of a message sent with an ack
// (SendAck, ReplyAck, Request, Ask).
type Receipt struct {
	// Delivered counts the recipients the gateway accepted the message
	// for. Delivery to their sockets is still at most once.
	Delivered int `json:"delivered"`
	// Gone counts the recipients the gateway no longer had; the server
	// forgets them.
	Gone int `json:"gone"`
	// Failed counts the posts that failed otherwise (throttled, timed out).
	Failed int `json:"failed"`
	// Queued counts the recipients of a big GROUP or GLOBAL that the
	// server handed to other invocations: their posts are still to come,
	// and their outcome is not reported.
	Queued int `json:"queued,omitempty"`
}

// Expected returns how many recipients may answer: those delivered and
// those queued (some of which may turn out gone).
func (r Receipt) Expected() int { return r.Delivered + r.Queued }
