package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mastersocket/mastersocket/internal/router"
)

// BulkLoad records connections in bulk, each with every item that
// AddConnection writes for it, through BatchWriteItem (25 items a call,
// several calls in flight) and without AddConnection's conditions: it
// overwrites what is there, does not check that a service id is free, and
// fills buckets as joins one at a time would. It is for filling test and
// benchmark tables quickly, which must not hold members of the same
// windows already. It returns the first error met.
func (s *Store) BulkLoad(ctx context.Context, conns []router.Connection) error {
	type bucketKey struct{ pk, sk string }
	type bucket struct {
		w   int64
		ids []string
	}
	buckets := map[bucketKey]*bucket{}
	var order []bucketKey
	place := func(pk string, w int64, id string) string {
		h := hashOf(id)
		for level := 0; ; level++ {
			k := bucketKey{pk, bucketSK(w, slotAt(h, level))}
			b := buckets[k]
			if b == nil {
				b = &bucket{w: w}
				buckets[k] = b
				order = append(order, k)
			}
			if len(b.ids) < capacity(k.pk, k.sk, len(id)) {
				b.ids = append(b.ids, id)
				return k.sk
			}
		}
	}
	var items []map[string]types.AttributeValue
	for _, c := range conns {
		var ms memberships
		if id := c.Identity; id != nil {
			w := window(c.ExpiresAt.Unix())
			ms = memberships{group: place(groupPK(id.Group), w, c.ID), all: place(pkAll, w, c.ID)}
			items = append(items, svcItem(c))
		}
		items = append(items, s.connItem(c, ms))
	}
	for _, k := range order {
		b := buckets[k]
		item := key(k.pk, k.sk)
		item[attrMembers] = &types.AttributeValueMemberSS{Value: b.ids}
		item[attrExpiresAt] = num(b.w)
		items = append(items, item)
	}
	return s.batchPut(ctx, items)
}

// batchPut writes items with BatchWriteItem, 25 a call and 8 calls in
// flight, retrying unprocessed items.
func (s *Store) batchPut(ctx context.Context, items []map[string]types.AttributeValue) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan []types.WriteRequest)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reqs := range batches {
				if err := s.batchWrite(ctx, reqs); err != nil {
					once.Do(func() { first = err; cancel(err) })
				}
			}
		}()
	}
	var reqs []types.WriteRequest
	for _, item := range items {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		if len(reqs) == 25 {
			select {
			case batches <- reqs:
			case <-ctx.Done():
			}
			reqs = nil
		}
	}
	if len(reqs) > 0 {
		select {
		case batches <- reqs:
		case <-ctx.Done():
		}
	}
	close(batches)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// batchWrite makes one BatchWriteItem of up to 25 requests, retrying its
// unprocessed items.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	requests := map[string][]types.WriteRequest{*s.table: reqs}
	for attempt := 1; len(requests) > 0; attempt++ {
		out, err := s.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: requests})
		if err != nil {
			return fmt.Errorf("batch write: %w", err)
		}
		requests = out.UnprocessedItems
		if len(requests) > 0 {
			if attempt >= maxConflictAttempts {
				return errors.New("batch write: items still unprocessed")
			}
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return err
			}
		}
	}
	return nil
}
