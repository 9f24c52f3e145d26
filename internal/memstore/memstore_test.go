package memstore_test

import (
	"testing"

	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s := memstore.New()
		s.PageSize = 7 // force many pages
		return s
	})
}
