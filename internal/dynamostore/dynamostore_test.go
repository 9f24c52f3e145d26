package dynamostore_test

import (
	"testing"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/storetest"
)

func TestContract(t *testing.T) {
	client := dynamotest.Client(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := dynamostore.New(client, dynamostore.Config{
			Table:    dynamotest.NewTable(t, client),
			PageSize: 25, // several pages for the group of 300
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
