// Command authorizer is the Lambda REQUEST authorizer of the WebSocket API's
// $connect route: it checks each handshake's token and group and gives the
// connection its identity, or refuses it with 401 or 403. Its settings come
// from environment variables; see internal/handler.Settings.
package main

import (
	"log"

	"github.com/mastersocket/mastersocket/internal/handler"
)

func main() {
	if err := handler.Start(func(h *handler.Handlers) any { return h.Authorize }); err != nil {
		log.Fatal(err)
	}
}
