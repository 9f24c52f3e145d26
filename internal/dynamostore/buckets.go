package dynamostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mastersocket/mastersocket/internal/router"
)

// The buckets of GROUP and GLOBAL membership (see the package comment).
const (
	bucketPrefix = "B#"
	// bucketWindow is the span of expiries one bucket holds, in seconds:
	// a bucket expires at the end of its window, at most this long after
	// its members.
	bucketWindow = 600
	// bucketBytes is a bucket's size at most: one write unit, so that
	// joining or leaving one costs 1.
	bucketBytes = 1024
	// maxLevel bounds the levels of a window: 2^17-1 buckets of about 60,
	// some 7 million joins in 10 minutes.
	maxLevel = 16
)

// memberships are the sort keys of a connection's GROUP and GLOBAL
// buckets.
type memberships struct{ group, all string }

// window returns the end of the window of expiry exp (epoch seconds): the
// first multiple of bucketWindow at or after it.
func window(exp int64) int64 {
	return (exp + bucketWindow - 1) / bucketWindow * bucketWindow
}

// windowString is a window's end in the fixed width that makes sort keys
// sort by time.
func windowString(sec int64) string { return fmt.Sprintf("%010d", sec) }

// bucketSK is the sort key of a window's bucket number slot.
func bucketSK(w int64, slot int) string {
	return bucketPrefix + windowString(w) + "#" + strconv.Itoa(slot)
}

// slotAt is the number of the bucket of level level on the path of a
// connection whose id hashes to h: 1 at level 0, 2 or 3 at level 1, 4 to 7
// at level 2...
func slotAt(h uint32, level int) int {
	return 1<<level | int(h&(1<<level-1))
}

func hashOf(connID string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(connID))
	return h.Sum32()
}

// capacity is how many connection ids of idLen bytes a bucket of key pk,
// sk holds within bucketBytes.
func capacity(pk, sk string, idLen int) int {
	fixed := len(attrPK) + len(pk) + len(attrSK) + len(sk) + len(attrExpiresAt) + 7 + len(attrMembers)
	return max(1, (bucketBytes-fixed)/max(1, idLen))
}

// levelKey names a window of a membership partition.
type levelKey struct {
	pk     string
	window int64
}

// levels remembers, for each window this container joins, the level at
// which it last found room: the buckets below it were full.
type levels struct {
	mu sync.Mutex
	m  map[levelKey]int
}

func (l *levels) get(k levelKey) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[k]
}

// set records level for k, forgetting the windows that have ended when
// there are many.
func (l *levels) set(k levelKey, level int, now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[levelKey]int{}
	}
	if len(l.m) >= 4096 {
		for old := range l.m {
			if old.window <= now {
				delete(l.m, old)
			}
		}
		if len(l.m) >= 4096 {
			clear(l.m)
		}
	}
	l.m[k] = level
}

// join adds identified connection c to the buckets of its group and of
// GLOBAL, in parallel, and returns their sort keys. On an error it returns
// too the sort key of each bucket that it wrote, or may have written (a
// write whose answer was an error may have been applied): the caller
// undoes them. An error of one does not cancel the other: a write
// cancelled in flight may still be applied, after the undo that was to
// take it back.
func (s *Store) join(ctx context.Context, c router.Connection) (memberships, error) {
	w := window(c.ExpiresAt.Unix())
	pks := [2]string{groupPK(c.Identity.Group), pkAll}
	var sks [2]string
	var errs [2]error
	var wg sync.WaitGroup
	for i := range pks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sks[i], errs[i] = s.joinBucket(ctx, pks[i], w, c.ID)
		}()
	}
	wg.Wait()
	return memberships{group: sks[0], all: sks[1]}, cmp.Or(errs[0], errs[1])
}

// joinBucket adds connID to the first bucket of window w of partition pk,
// on its path from the level this container last found room at, that has
// room for it (or holds it already), and returns the bucket's sort key. A
// full bucket refuses the write by its condition (which costs a write
// unit), and the next level is tried. On any other error it returns the
// sort key of the bucket whose write failed, which may have been applied.
func (s *Store) joinBucket(ctx context.Context, pk string, w int64, connID string) (string, error) {
	h := hashOf(connID)
	lk := levelKey{pk, w}
	for level := s.levels.get(lk); level <= maxLevel; level++ {
		sk := bucketSK(w, slotAt(h, level))
		err := retryConflicts(ctx, func() error {
			_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:           s.table,
				Key:                 key(pk, sk),
				UpdateExpression:    aws.String("ADD m :ids SET expiresAt = :w"),
				ConditionExpression: aws.String("attribute_not_exists(m) OR size(m) < :cap OR contains(m, :id)"),
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":ids": &types.AttributeValueMemberSS{Value: []string{connID}},
					":id":  str(connID),
					":w":   num(w),
					":cap": num(int64(capacity(pk, sk, len(connID)))),
				},
			})
			return err
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			continue // full
		}
		if err != nil {
			return sk, fmt.Errorf("join %s: %w", pk, err)
		}
		s.levels.set(lk, level, s.cfg.Now().Unix())
		return sk, nil
	}
	return "", fmt.Errorf("join %s: every bucket of window %d is full", pk, w)
}

// leave takes connID out of bucket sk of partition pk. A bucket that is
// gone (TTL deleted it) is left as it is: an update would create it again.
func (s *Store) leave(ctx context.Context, pk, sk, connID string) error {
	return s.updateBucket(ctx, "DELETE", pk, sk, connID)
}

// rejoin adds connID back to bucket sk of partition pk, whatever its size:
// for a connection identified with that bucket, whose entry a concurrent
// IDENTIFY of the same connection that failed took out (see undo). A
// bucket that is gone (its window has ended) is left as it is.
func (s *Store) rejoin(ctx context.Context, pk, sk, connID string) error {
	return s.updateBucket(ctx, "ADD", pk, sk, connID)
}

// updateBucket applies op (ADD or DELETE) with connID to the set of bucket
// sk of partition pk, if the bucket exists.
func (s *Store) updateBucket(ctx context.Context, op, pk, sk, connID string) error {
	if sk == "" {
		return nil
	}
	err := retryConflicts(ctx, func() error {
		_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 s.table,
			Key:                       key(pk, sk),
			UpdateExpression:          aws.String(op + " m :ids"),
			ConditionExpression:       aws.String("attribute_exists(pk)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":ids": &types.AttributeValueMemberSS{Value: []string{connID}}},
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("%s %s in %s %s: %w", op, connID, pk, sk, err)
	}
	return nil
}
