// Command fanout is the Lambda function that delivers the batches of a big
// GROUP or GLOBAL message, invoked asynchronously by the message function.
// Its settings come from environment variables; see internal/handler.Settings.
package main

import (
	"log"

	"github.com/mastersocket/mastersocket/internal/handler"
)

func main() {
	if err := handler.Start(func(h *handler.Handlers) any { return h.FanOut }); err != nil {
		log.Fatal(err)
	}
}
