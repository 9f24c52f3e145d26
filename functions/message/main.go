// Command message is the Lambda function of the WebSocket API's $default route.
// Its settings come from environment variables; see internal/handler.Settings.
package main

import (
	"log"

	"github.com/mastersocket/mastersocket/internal/handler"
)

func main() {
	if err := handler.Start(func(h *handler.Handlers) any { return h.Message }); err != nil {
		log.Fatal(err)
	}
}
