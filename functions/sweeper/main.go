// Command sweeper is the Lambda function that the sweeper's EventBridge
// schedule invokes: it closes silent and unidentified connections and
// removes the items of those the gateway no longer has. Its settings come
// from environment variables; see internal/handler.Settings.
package main

import (
	"log"

	"github.com/mastersocket/mastersocket/internal/handler"
)

func main() {
	if err := handler.Start(func(h *handler.Handlers) any { return h.Sweep }); err != nil {
		log.Fatal(err)
	}
}
