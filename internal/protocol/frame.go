package protocol

import "encoding/json"

// Frame is any frame of protocol v1 as a receiver decodes it, without the
// validation of Parse: what clients and tests use to read server frames.
type Frame struct {
	ID     string          `json:"id,omitempty"`
	Op     Op              `json:"op"`
	Event  string          `json:"event,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Intent *Intent         `json:"intent,omitempty"`
	Source *Source         `json:"source,omitempty"`
}

// ErrorData is the data of an ERROR frame and of a server DISCONNECT.
type ErrorData struct {
	Code    Code   `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// IdentifiedData is the data of the server's answer to a successful IDENTIFY.
type IdentifiedData struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	// Ping is the heartbeat interval in milliseconds.
	Ping int `json:"ping"`
}
