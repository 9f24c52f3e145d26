// Package dynamostore is the registry of connections, services, groups and
// tokens on one DynamoDB table (on-demand, key pk/sk, TTL on expiresAt).
//
// Items, all carrying expiresAt (epoch seconds) so that a missed
// $disconnect never leaves a mapping behind for ever (docs/DATAMODEL.md
// gives each attribute's bytes and readers):
//
//	pk               sk                 attributes
//	CONN#<conn id>   META               connectedAt, connShard, sourceIp, userAgent; once identified: serviceId, group, identifiedAt, gb, ab; u (see undo)
//	SVC#<service id> META               connId
//	GROUP#<group>    B#<window>#<slot>  m: the string set of the connection ids of up to ~60 members
//	ALL#0            B#<window>#<slot>  m: the same, for GLOBAL
//	TOKEN            <sha256 hex>       name, groups, allGroups, createdAt (expiresAt only when the token expires)
//
// A GROUP or GLOBAL lists its members from buckets: items of about 1 KB
// at most, each holding the connection ids of many members, so that a
// fan-out reads some 16 bytes a member instead of an item each. A member
// joins the bucket of its expiry window (the 10 minutes in which its
// connection expires, which is the bucket's own expiresAt, so TTL deletes
// a bucket only after each of its members has expired, and a bucket never
// lives on past its window however many join it) and, within the window,
// the first bucket on its path that has room: slot 1 (level 0), then one of
// 2 (level 1), one of 4, and so on, chosen by a hash of the connection id,
// so that buckets stay small and a warm container, which remembers each
// window's level, usually writes once. The connection item records both
// buckets (gb, ab) so that a removal finds them.
//
// Access patterns: the identity of a connection and the connection of a
// service are one GetItem each; a GROUP is one Query of its partition, a
// GLOBAL one Query of ALL#0 (per 1 MB page); no message path ever scans.
// IDENTIFY is two UpdateItems (the buckets, in parallel), a PutItem (the
// service, on condition that its id is free) and an UpdateItem (the
// connection, on condition that it is live and anonymous): the connection
// item goes last, so that an identified connection is always reachable,
// and an IDENTIFY that fails or loses to a concurrent one undoes the rest
// (taking care of the bucket entries that a concurrent IDENTIFY of the same
// connection shares with it: see undo).
// (A TransactWriteItems would cost twice the write units, and buckets,
// which many connections write, would make concurrent transactions
// conflict.) The sweeper lists every connection item, identified or not,
// through the global secondary index "connections" (hash connShard =
// CONNS#<gateway hash>#<shard>, range connectedAt): one Query per shard
// and page, in parallel, for the connections of one gateway; the index
// holds only connection items.
//
// Reads are eventually consistent, at half the read units of strongly
// consistent ones, except a token's (a deleted token stops working at
// once). A read of a connection or a service that finds nothing, or an
// anonymous connection, is repeated strongly before the store answers "not
// found", so a DIRECT or a sender's identity never misses a connection
// identified a moment ago. Fan-out reads are not repeated: a GROUP or
// GLOBAL routed within about a second of a member's IDENTIFY may miss it
// (its buckets are written before its IDENTIFY is answered, which narrows
// that window), and one removed a moment ago may still be listed, gets 410
// and is cleaned up again.
//
// Items of the previous layout (one member item per GROUP#<group> or
// ALL#<shard> partition and CONN#<conn id> sort key, with serviceId and
// group), which live for up to 2 h 10 min after a deploy, are still read
// and removed: those of a group and of ALL#0 come with the buckets in the
// same Query; ALL#1 to ALL#(Shards-1) are queried too until they are found
// empty, then again every 10 minutes.
package dynamostore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// API is the part of the DynamoDB client the store calls; *dynamodb.Client
// implements it, and tests wrap it to count calls.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// DefaultShards is the number of partitions of the connections index.
const DefaultShards = 4

// Config tunes a Store. Zero fields mean their documented defaults.
type Config struct {
	// Table is the table name; required.
	Table string
	// Shards is the number of CONNS#<n> partitions of the connections
	// index (a sweep costs one Query per shard), and of the ALL#<n>
	// partitions of the previous layout's GLOBAL membership, which GLOBAL
	// still reads while they hold members. Default 4. Raising it is safe at
	// any time; lowering it hides the connections of the dropped shards
	// from the sweeper until they reconnect.
	Shards int
	// PageSize caps the items of one Query page (a fan-out's page is of
	// buckets, of up to ~60 members each); zero lets DynamoDB fill pages
	// up to 1 MB.
	PageSize int32
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Store is a registry on a DynamoDB table. It is safe for concurrent use.
type Store struct {
	api   API
	table *string
	cfg   Config

	levels levels      // the level each bucket window is filling, as this container saw it
	legacy legacyProbe // when ALL#1.. are next queried
}

var _ router.Store = (*Store)(nil)

// New returns a store on cfg.Table through api.
func New(api API, cfg Config) (*Store, error) {
	if cfg.Table == "" {
		return nil, errors.New("dynamostore: table name is required")
	}
	if cfg.Shards == 0 {
		cfg.Shards = DefaultShards
	} else if cfg.Shards < 0 {
		return nil, fmt.Errorf("dynamostore: shards %d: want at least 1", cfg.Shards)
	}
	if cfg.PageSize < 0 {
		return nil, fmt.Errorf("dynamostore: page size %d: want 0 or more", cfg.PageSize)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{api: api, table: aws.String(cfg.Table), cfg: cfg}, nil
}

// Attribute names and key prefixes.
const (
	attrPK           = "pk"
	attrSK           = "sk"
	attrExpiresAt    = "expiresAt"
	attrConnectedAt  = "connectedAt"
	attrSourceIP     = "sourceIp"
	attrUserAgent    = "userAgent"
	attrServiceID    = "serviceId"
	attrGroup        = "group"
	attrShard        = "shard" // the previous layout's GLOBAL shard of a connection
	attrIdentifiedAt = "identifiedAt"
	attrConnID       = "connId"
	attrName         = "name"
	attrGroups       = "groups"
	attrAllGroups    = "allGroups"
	attrCreatedAt    = "createdAt"
	attrConnShard    = "connShard"
	attrMembers      = "m"  // a bucket's connection ids
	attrGroupBucket  = "gb" // a connection's GROUP bucket (its sort key)
	attrAllBucket    = "ab" // a connection's GLOBAL bucket (its sort key)
	attrUndone       = "u"  // on an anonymous connection: a failed IDENTIFY took it out of buckets

	// IndexConnections is the global secondary index of connection items.
	IndexConnections = "connections"

	skMeta     = "META"
	connPrefix = "CONN#"
	pkTokens   = "TOKEN"
	pkAll      = "ALL#0"
)

func connKey(connID string) map[string]types.AttributeValue {
	return key(connPrefix+connID, skMeta)
}

func serviceKey(serviceID string) map[string]types.AttributeValue {
	return key("SVC#"+serviceID, skMeta)
}

func groupPK(group string) string { return "GROUP#" + group }

// shardPK is a GLOBAL partition of the previous layout.
func shardPK(shard int) string { return "ALL#" + strconv.Itoa(shard) }

// connShardKey is the connections index's key of a gateway's shard:
// CONNS#<the first 16 hex digits of the SHA-256 of the gateway's name>#<n>.
func connShardKey(gateway string, shard int) string {
	sum := sha256.Sum256([]byte(gateway))
	return "CONNS#" + hex.EncodeToString(sum[:8]) + "#" + strconv.Itoa(shard)
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(pk), attrSK: str(sk)}
}

// shardOf spreads connections over the shards of the connections index.
func (s *Store) shardOf(connID string) int {
	h := fnv.New32a()
	h.Write([]byte(connID))
	return int(h.Sum32() % uint32(s.cfg.Shards))
}

// AddConnection records a new connection: with one PutItem when it is
// anonymous. With c.Identity, it first adds the connection to its GROUP
// and GLOBAL buckets, then writes its service item (on condition that the
// service id is free) and its connection item, identified: the connection
// item goes last, so that an identified connection is always reachable.
func (s *Store) AddConnection(ctx context.Context, c router.Connection) error {
	if c.Identity == nil {
		err := retryConflicts(ctx, func() error {
			_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: s.table, Item: s.connItem(c, memberships{})})
			return err
		})
		if err != nil {
			return fmt.Errorf("put connection %s: %w", c.ID, err)
		}
		return nil
	}
	ms, err := s.join(ctx, c)
	if err != nil {
		s.undo(ctx, c, ms, false)
		return fmt.Errorf("add connection %s: %w", c.ID, err)
	}
	if err := s.putService(ctx, c); err != nil {
		s.undo(ctx, c, ms, false)
		return err
	}
	err = retryConflicts(ctx, func() error {
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: s.table, Item: s.connItem(c, ms)})
		return err
	})
	if err != nil {
		if s.undo(ctx, c, ms, true) {
			return nil // the write was applied, its answer lost
		}
		return fmt.Errorf("put identified connection %s: %w", c.ID, err)
	}
	return nil
}

// connItem is the connection item of c, identified when c.Identity is set,
// with the buckets ms.
func (s *Store) connItem(c router.Connection, ms memberships) map[string]types.AttributeValue {
	item := connKey(c.ID)
	item[attrConnectedAt] = millis(c.ConnectedAt)
	item[attrConnShard] = str(connShardKey(c.Gateway, s.shardOf(c.ID)))
	item[attrExpiresAt] = seconds(c.ExpiresAt)
	if c.SourceIP != "" {
		item[attrSourceIP] = str(c.SourceIP)
	}
	if c.UserAgent != "" {
		item[attrUserAgent] = str(c.UserAgent)
	}
	if id := c.Identity; id != nil {
		item[attrServiceID] = str(id.ServiceID)
		item[attrGroup] = str(id.Group)
		item[attrIdentifiedAt] = millis(id.IdentifiedAt)
		item[attrGroupBucket] = str(ms.group)
		item[attrAllBucket] = str(ms.all)
	}
	return item
}

// svcItem is the service item of identified connection c.
func svcItem(c router.Connection) map[string]types.AttributeValue {
	svc := serviceKey(c.Identity.ServiceID)
	svc[attrConnID] = str(c.ID)
	svc[attrExpiresAt] = seconds(c.ExpiresAt)
	return svc
}

// putService writes c's service item, on condition that no other
// connection has its service id: router.ErrAlreadyIdentified otherwise.
func (s *Store) putService(ctx context.Context, c router.Connection) error {
	err := retryConflicts(ctx, func() error {
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: s.table, Item: svcItem(c),
			ConditionExpression:       aws.String("attribute_not_exists(pk) OR connId = :c"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":c": str(c.ID)},
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return router.ErrAlreadyIdentified
	}
	if err != nil {
		return fmt.Errorf("put service %s: %w", c.Identity.ServiceID, err)
	}
	return nil
}

// undo cleans up after an IDENTIFY (or an identified AddConnection) of c
// that failed, or lost to a concurrent one: it takes c out of the buckets
// ms, and deletes its service item if withService, except what the
// connection item, read strongly, records as its own (a retried IDENTIFY
// may have succeeded after all). It runs even when ctx has just been
// cancelled. What it fails to undo is left to TTL: buckets outlive their
// members by 10 minutes at most, and nobody knows the service id of an
// IDENTIFY that failed.
//
// A connection's entry in a bucket is its id, one element of the set
// whichever IDENTIFY added it: when the connection item is still
// anonymous, another IDENTIFY of the same connection may be on its way to
// succeed with the same buckets, and the entries taken out here may be its
// own. So, after taking them out, undo marks the connection item (attribute
// u, on condition that it is still anonymous): an IDENTIFY that succeeds
// after the mark finds it (and removes it) and adds its entries back; if
// one succeeded before the mark, undo adds back those of its entries that
// it took out.
//
// It reports whether the connection item records c's identity and buckets
// ms: the IDENTIFY's own write was applied, though its answer said
// otherwise (an attempt that the SDK retried, or whose answer a timeout
// cut short). That answer would have said whether a failed IDENTIFY had
// taken the connection out of its buckets, so undo then adds it back (2
// write units, on this rare path).
func (s *Store) undo(ctx context.Context, c router.Connection, ms memberships, withService bool) (applied bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	item, err := s.getConnItem(ctx, c.ID, true)
	if err != nil {
		return false
	}
	id := c.Identity
	if strOf(item[attrServiceID]) == id.ServiceID && strOf(item[attrGroup]) == id.Group &&
		strOf(item[attrGroupBucket]) == ms.group && strOf(item[attrAllBucket]) == ms.all {
		return s.rejoinAll(ctx, c.ID, id.Group, ms) == nil
	}
	var undo []func(context.Context) error
	if withService && strOf(item[attrServiceID]) != id.ServiceID {
		undo = append(undo, func(ctx context.Context) error { return s.deleteService(ctx, id.ServiceID, c.ID) })
	}
	var left memberships // the buckets c is taken out of
	if ms.group != "" && (strOf(item[attrGroup]) != id.Group || strOf(item[attrGroupBucket]) != ms.group) {
		left.group = ms.group
		undo = append(undo, func(ctx context.Context) error { return s.leave(ctx, groupPK(id.Group), ms.group, c.ID) })
	}
	if ms.all != "" && strOf(item[attrAllBucket]) != ms.all {
		left.all = ms.all
		undo = append(undo, func(ctx context.Context) error { return s.leave(ctx, pkAll, ms.all, c.ID) })
	}
	if len(undo) > 0 {
		s.each(ctx, len(undo), func(ctx context.Context, i int) error { return undo[i](ctx) })
	}
	if item == nil || item[attrServiceID] != nil || left == (memberships{}) {
		// Gone (no IDENTIFY of it can succeed any more), or identified
		// already, with the buckets it records kept.
		return false
	}
	err = retryConflicts(ctx, func() error {
		_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                           s.table,
			Key:                                 connKey(c.ID),
			UpdateExpression:                    aws.String("SET #u = :u"),
			ConditionExpression:                 aws.String("attribute_exists(#pk) AND attribute_not_exists(#s)"),
			ExpressionAttributeNames:            map[string]string{"#pk": attrPK, "#s": attrServiceID, "#u": attrUndone},
			ExpressionAttributeValues:           map[string]types.AttributeValue{":u": num(1)},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return false
	}
	// Identified meanwhile: add back what was taken out of its buckets.
	cur := ccf.Item
	if cur == nil {
		if cur, err = s.getConnItem(ctx, c.ID, true); err != nil {
			return false
		}
	}
	if cur == nil || cur[attrServiceID] == nil {
		return false
	}
	var back memberships
	if strOf(cur[attrGroup]) == id.Group && strOf(cur[attrGroupBucket]) == left.group {
		back.group = left.group
	}
	if strOf(cur[attrAllBucket]) == left.all {
		back.all = left.all
	}
	s.rejoinAll(ctx, c.ID, id.Group, back)
	return false
}

// rejoinAll adds connID back to its buckets ms (of group group and of
// GLOBAL), in parallel, even when ctx has just been cancelled: the
// connection is identified already.
func (s *Store) rejoinAll(ctx context.Context, connID, group string, ms memberships) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	pks, sks := [2]string{groupPK(group), pkAll}, [2]string{ms.group, ms.all}
	return s.each(ctx, 2, func(ctx context.Context, i int) error { return s.rejoin(ctx, pks[i], sks[i], connID) })
}

// Identify gives a recorded, live, anonymous connection its identity: it
// adds the connection to its GROUP and GLOBAL buckets, writes its service
// item, and last sets the identity on the connection item, on condition
// that the connection is recorded, live and anonymous. Of concurrent
// IDENTIFYs of a connection exactly one succeeds; the others, and any that
// fails, undo their buckets and service item.
func (s *Store) Identify(ctx context.Context, c router.Connection) error {
	if c.Identity == nil {
		return errors.New("identify: no identity given")
	}
	id := c.Identity
	ms, err := s.join(ctx, c)
	if err != nil {
		s.undo(ctx, c, ms, false)
		return fmt.Errorf("identify %s: %w", c.ID, err)
	}
	if err := s.putService(ctx, c); err != nil {
		s.undo(ctx, c, ms, false)
		return err
	}
	var out *dynamodb.UpdateItemOutput
	err = retryConflicts(ctx, func() error {
		var err error
		out, err = s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:           s.table,
			Key:                 connKey(c.ID),
			UpdateExpression:    aws.String("SET #s = :s, #g = :g, #t = :t, #gb = :gb, #ab = :ab REMOVE #u"),
			ConditionExpression: aws.String("attribute_exists(#pk) AND attribute_not_exists(#s) AND #e > :now"),
			ExpressionAttributeNames: map[string]string{ // "group" is a reserved word
				"#pk": attrPK, "#s": attrServiceID, "#g": attrGroup, "#t": attrIdentifiedAt, "#e": attrExpiresAt,
				"#gb": attrGroupBucket, "#ab": attrAllBucket, "#u": attrUndone,
			},
			ReturnValues: types.ReturnValueUpdatedOld,
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":s":   str(id.ServiceID),
				":g":   str(id.Group),
				":t":   millis(id.IdentifiedAt),
				":gb":  str(ms.group),
				":ab":  str(ms.all),
				":now": seconds(s.cfg.Now()),
			},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		return err
	})
	if err == nil {
		if out.Attributes[attrUndone] != nil {
			// A failed IDENTIFY of this connection, concurrent with this
			// one, took the connection out of buckets while it was
			// anonymous (see undo), perhaps this one's: add it back.
			if err := s.rejoinAll(ctx, c.ID, id.Group, ms); err != nil {
				return fmt.Errorf("identify %s: %w", c.ID, err)
			}
		}
		return nil
	}
	if s.undo(ctx, c, ms, true) {
		// The write was applied after all (an attempt that the SDK
		// retried, or whose answer a timeout cut short).
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return s.whyNotIdentifiable(ctx, c.ID, ccf.Item)
	}
	return fmt.Errorf("identify %s: %w", c.ID, err)
}

// maxConflictAttempts bounds the tries of a write that a transaction holds
// up.
const maxConflictAttempts = 8

// isTransactionConflict reports a write refused because a transaction holds
// the item: DynamoDB answers that to a plain write racing a
// TransactWriteItems (the previous version's IDENTIFY, during a deploy),
// and the SDK does not retry it.
func isTransactionConflict(err error) bool {
	var tce *types.TransactionConflictException
	return errors.As(err, &tce)
}

// retryConflicts runs write, again after a backoff while a transaction
// holds its item, up to maxConflictAttempts times.
func retryConflicts(ctx context.Context, write func() error) error {
	for attempt := 1; ; attempt++ {
		err := write()
		if !isTransactionConflict(err) || attempt >= maxConflictAttempts {
			return err
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
	}
}

// whyNotIdentifiable turns a failed IDENTIFY condition into ErrNotFound or
// ErrAlreadyIdentified, from the item the condition saw when DynamoDB
// returns it, or from a fresh read otherwise.
func (s *Store) whyNotIdentifiable(ctx context.Context, connID string, item map[string]types.AttributeValue) error {
	if item == nil {
		var err error
		if item, err = s.getConnItem(ctx, connID, true); err != nil {
			return fmt.Errorf("identify %s: %w", connID, err)
		}
	}
	if len(item) == 0 || s.expired(item) {
		return router.ErrNotFound
	}
	if _, ok := item[attrServiceID]; ok {
		return router.ErrAlreadyIdentified
	}
	return fmt.Errorf("identify %s: condition failed on a live, anonymous connection", connID)
}

// Connection returns a recorded, live connection, or router.ErrNotFound.
func (s *Store) Connection(ctx context.Context, connID string) (router.Connection, error) {
	item, err := s.getConn(ctx, connID)
	if err != nil {
		return router.Connection{}, err
	}
	return connFrom(connID, item), nil
}

// getConn reads a live connection item, or returns router.ErrNotFound:
// eventually consistent, then strongly when that finds no identified,
// live connection (which a connection identified a moment ago may not be
// yet).
func (s *Store) getConn(ctx context.Context, connID string) (map[string]types.AttributeValue, error) {
	item, err := s.getConnItem(ctx, connID, false)
	if err == nil && (item == nil || s.expired(item) || item[attrServiceID] == nil) {
		item, err = s.getConnItem(ctx, connID, true)
	}
	if err != nil {
		return nil, err
	}
	if item == nil || s.expired(item) {
		return nil, router.ErrNotFound
	}
	return item, nil
}

// getConnItem reads a connection item, expired or not; nil if there is
// none.
func (s *Store) getConnItem(ctx context.Context, connID string, consistent bool) (map[string]types.AttributeValue, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: connKey(connID), ConsistentRead: aws.Bool(consistent)})
	if err != nil {
		return nil, fmt.Errorf("get connection %s: %w", connID, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

func connFrom(connID string, item map[string]types.AttributeValue) router.Connection {
	c := router.Connection{
		ID:          connID,
		ConnectedAt: timeMillis(item[attrConnectedAt]),
		ExpiresAt:   timeSeconds(item[attrExpiresAt]),
		SourceIP:    strOf(item[attrSourceIP]),
		UserAgent:   strOf(item[attrUserAgent]),
	}
	if sid := strOf(item[attrServiceID]); sid != "" {
		c.Identity = &router.Identity{
			ServiceID:    sid,
			Group:        strOf(item[attrGroup]),
			IdentifiedAt: timeMillis(item[attrIdentifiedAt]),
		}
	}
	return c
}

// ServiceConnection returns the connection id of a live service, or
// router.ErrNotFound: eventually consistent, then strongly when that finds
// none.
func (s *Store) ServiceConnection(ctx context.Context, serviceID string) (string, error) {
	for _, consistent := range []bool{false, true} {
		out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:            s.table,
			Key:                  serviceKey(serviceID),
			ConsistentRead:       aws.Bool(consistent),
			ProjectionExpression: aws.String("connId, expiresAt"),
		})
		if err != nil {
			return "", fmt.Errorf("get service %s: %w", serviceID, err)
		}
		if len(out.Item) > 0 && !s.expired(out.Item) {
			return strOf(out.Item[attrConnID]), nil
		}
	}
	return "", router.ErrNotFound
}

// GroupMembers calls fn with each page of the group's live members: one
// eventually consistent Query per page of buckets. Members' ServiceID is
// left empty.
func (s *Store) GroupMembers(ctx context.Context, group string, fn func([]router.Member) error) error {
	return s.members(ctx, groupPK(group), fn)
}

// AllMembers calls fn with each page of every live identified connection:
// one eventually consistent Query of ALL#0 per page of buckets, and while
// the previous layout's ALL#1 to ALL#(Shards-1) may hold members, one
// Query of each, in parallel; fn may then be called from several
// goroutines. The first error stops the others. Members' ServiceID is
// left empty.
func (s *Store) AllMembers(ctx context.Context, fn func([]router.Member) error) error {
	parts := []string{pkAll}
	now := s.cfg.Now()
	probing := s.cfg.Shards > 1 && s.legacy.due(now)
	if probing {
		for shard := 1; shard < s.cfg.Shards; shard++ {
			parts = append(parts, shardPK(shard))
		}
	}
	var found sync.Once
	legacyFound := false
	err := s.each(ctx, len(parts), func(ctx context.Context, i int) error {
		return s.members(ctx, parts[i], func(page []router.Member) error {
			if i > 0 {
				found.Do(func() { legacyFound = true })
			}
			return fn(page)
		})
	})
	if probing && err == nil {
		s.legacy.probed(now, legacyFound)
	}
	return err
}

// legacyProbe says when the previous layout's GLOBAL partitions ALL#1 to
// ALL#(Shards-1) are next read: at every GLOBAL while they hold members,
// then every 10 minutes once they were found empty. Only a container of
// the previous version still running writes there, and not for long
// after a deploy.
type legacyProbe struct {
	mu   sync.Mutex
	next time.Time
}

const legacyProbeInterval = 10 * time.Minute

func (l *legacyProbe) due(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !now.Before(l.next)
}

func (l *legacyProbe) probed(now time.Time, found bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if found {
		l.next = time.Time{}
	} else {
		l.next = now.Add(legacyProbeInterval)
	}
}

// Connections calls fn with each page of every connection item of a
// gateway (router.Connection.Gateway), identified or not, expired or not (TTL deletes items only eventually): one Query of
// the connections index per shard and page, the shards in parallel, so fn
// is called from one goroutine per shard. The index is eventually
// consistent: a connection recorded a moment ago may be missing, and one
// removed a moment ago may still be listed.
func (s *Store) Connections(ctx context.Context, gateway string, fn func([]router.Connection) error) error {
	return s.each(ctx, s.cfg.Shards, func(ctx context.Context, shard int) error {
		in := &dynamodb.QueryInput{
			TableName:                 s.table,
			IndexName:                 aws.String(IndexConnections),
			KeyConditionExpression:    aws.String("#cs = :cs"),
			ExpressionAttributeNames:  map[string]string{"#cs": attrConnShard},
			ExpressionAttributeValues: map[string]types.AttributeValue{":cs": str(connShardKey(gateway, shard))},
		}
		return queryPages(ctx, s, in, func(item map[string]types.AttributeValue, page []router.Connection) []router.Connection {
			id, ok := strings.CutPrefix(strOf(item[attrPK]), connPrefix)
			if !ok {
				return page
			}
			c := connFrom(id, item)
			c.Gateway = gateway
			return append(page, c)
		}, fn)
	})
}

// queryPages runs a Query page by page (PageSize items at most each), and
// calls fn with what convert makes of each page's items.
func queryPages[T any](ctx context.Context, s *Store, in *dynamodb.QueryInput, convert func(item map[string]types.AttributeValue, page []T) []T, fn func([]T) error) error {
	if s.cfg.PageSize > 0 {
		in.Limit = aws.Int32(s.cfg.PageSize)
	}
	for {
		out, err := s.api.Query(ctx, in)
		if err != nil {
			return fmt.Errorf("query %s: %w", queryName(in), err)
		}
		var page []T
		for _, item := range out.Items {
			page = convert(item, page)
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// queryName names a Query's partition in errors: "GROUP#bots", or
// "connections index CONNS#2".
func queryName(in *dynamodb.QueryInput) string {
	key := strOf(in.ExpressionAttributeValues[":pk"])
	if in.IndexName != nil {
		return *in.IndexName + " index " + strOf(in.ExpressionAttributeValues[":cs"])
	}
	return key
}

// each runs fn for 0 to n-1 in parallel; the first error cancels the
// others and is returned.
func (s *Store) each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		}()
	}
	wg.Wait()
	return first
}

// members queries one membership partition page by page, eventually
// consistent: its buckets of live windows, and the member items of the
// previous layout (sort key CONN#<id>, which sorts after every bucket).
// A connection listed twice (in two buckets, after an IDENTIFY retried) is
// passed on once.
func (s *Store) members(ctx context.Context, pk string, fn func([]router.Member) error) error {
	in := &dynamodb.QueryInput{
		TableName:              s.table,
		KeyConditionExpression: aws.String("pk = :pk AND sk >= :from"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(pk), ":from": str(bucketPrefix + windowString(s.cfg.Now().Unix()+1)),
		},
		ProjectionExpression: aws.String("sk, m, expiresAt"),
	}
	seen := map[string]struct{}{}
	add := func(page []router.Member, id string) []router.Member {
		if _, dup := seen[id]; dup {
			return page
		}
		seen[id] = struct{}{}
		return append(page, router.Member{ConnectionID: id})
	}
	return queryPages(ctx, s, in, func(item map[string]types.AttributeValue, page []router.Member) []router.Member {
		if s.expired(item) {
			return page
		}
		if id, ok := strings.CutPrefix(strOf(item[attrSK]), connPrefix); ok {
			return add(page, id) // the previous layout
		}
		if set, ok := item[attrMembers].(*types.AttributeValueMemberSS); ok {
			for _, id := range set.Value {
				page = add(page, id)
			}
		}
		return page
	}, fn)
}

// RemoveConnection deletes a connection's service item and its GROUP and
// GLOBAL memberships, then the connection item itself, on condition that
// it has not been identified meanwhile. The connection item goes last so
// that a removal cut short is finished by the next one: nothing is ever
// left unreachable.
func (s *Store) RemoveConnection(ctx context.Context, connID string) error {
	consistent := false
	for attempt := 1; ; attempt++ {
		item, err := s.getConnItem(ctx, connID, consistent)
		if err == nil && item == nil && !consistent {
			// Not there, or written a moment ago: look again, strongly.
			consistent = true
			item, err = s.getConnItem(ctx, connID, true)
		}
		if err != nil || item == nil {
			return err
		}
		cond := aws.String("attribute_not_exists(serviceId)")
		var values map[string]types.AttributeValue
		if sid := strOf(item[attrServiceID]); sid != "" {
			if err := s.deleteMappings(ctx, connID, item); err != nil {
				return err
			}
			cond = aws.String("serviceId = :s")
			values = map[string]types.AttributeValue{":s": str(sid)}
		}
		_, err = s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: s.table, Key: connKey(connID),
			ConditionExpression: cond, ExpressionAttributeValues: values,
		})
		var ccf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ccf) && attempt < maxConflictAttempts:
			consistent = true // identified or removed meanwhile: look again
		case isTransactionConflict(err) && attempt < maxConflictAttempts:
			// A transaction (the previous version's IDENTIFY) holds the
			// item: look again after it.
			consistent = true
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("delete connection %s: %w", connID, err)
		}
	}
}

// deleteMappings deletes the service item and the memberships of an
// identified connection, in parallel: its entries in its two buckets, or
// the previous layout's member items.
func (s *Store) deleteMappings(ctx context.Context, connID string, item map[string]types.AttributeValue) error {
	sid, group := strOf(item[attrServiceID]), strOf(item[attrGroup])
	gb, ab := strOf(item[attrGroupBucket]), strOf(item[attrAllBucket])
	if gb == "" && ab == "" {
		return s.deleteLegacyMappings(ctx, connID, item)
	}
	writes := []func(context.Context) error{
		func(ctx context.Context) error { return s.deleteService(ctx, sid, connID) },
		func(ctx context.Context) error { return s.leave(ctx, groupPK(group), gb, connID) },
		func(ctx context.Context) error { return s.leave(ctx, pkAll, ab, connID) },
	}
	if err := s.each(ctx, len(writes), func(ctx context.Context, i int) error { return writes[i](ctx) }); err != nil {
		return fmt.Errorf("delete mappings of %s: %w", connID, err)
	}
	return nil
}

// deleteService deletes the service item of serviceID, on condition that it
// is connID's: a removal that read its connection item eventually
// consistently, or that runs late beside another, may find the service id
// taken by another connection since.
func (s *Store) deleteService(ctx context.Context, serviceID, connID string) error {
	err := retryConflicts(ctx, func() error {
		_, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: s.table, Key: serviceKey(serviceID),
			ConditionExpression:       aws.String("connId = :c"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":c": str(connID)},
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("delete service %s: %w", serviceID, err)
	}
	return nil
}

// deleteLegacyMappings deletes the service, group and shard items of a
// connection identified by the previous version, in parallel: with
// DeleteItem, which every function that removes connections may call.
func (s *Store) deleteLegacyMappings(ctx context.Context, connID string, item map[string]types.AttributeValue) error {
	shard, _ := strconv.Atoi(numOf(item[attrShard]))
	keys := []map[string]types.AttributeValue{
		nil, // the service
		key(groupPK(strOf(item[attrGroup])), connPrefix+connID),
		key(shardPK(shard), connPrefix+connID),
	}
	err := s.each(ctx, len(keys), func(ctx context.Context, i int) error {
		if i == 0 {
			return s.deleteService(ctx, strOf(item[attrServiceID]), connID)
		}
		return retryConflicts(ctx, func() error {
			_, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: s.table, Key: keys[i]})
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("delete mappings of %s: %w", connID, err)
	}
	return nil
}

// Token returns the stored token whose hash is h, or router.ErrNotFound.
// The read is strongly consistent: a token works as soon as it is created,
// and stops as soon as it is deleted.
func (s *Store) Token(ctx context.Context, h token.Hash) (token.Token, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: key(pkTokens, h.String()), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return token.Token{}, fmt.Errorf("get token %s: %w", h.ID(), err)
	}
	if len(out.Item) == 0 {
		return token.Token{}, router.ErrNotFound
	}
	return tokenFrom(out.Item)
}

// PutToken stores a new token; it returns token.ErrExists if its hash is
// stored already. A token with an expiry carries expiresAt, so that
// DynamoDB's TTL removes it some time after it has stopped working.
func (s *Store) PutToken(ctx context.Context, t token.Token) error {
	item := key(pkTokens, t.Hash.String())
	item[attrName] = str(t.Name)
	groups := make([]types.AttributeValue, len(t.Groups))
	for i, g := range t.Groups {
		groups[i] = str(g)
	}
	item[attrGroups] = &types.AttributeValueMemberL{Value: groups}
	item[attrAllGroups] = &types.AttributeValueMemberBOOL{Value: t.AllGroups}
	item[attrCreatedAt] = millis(t.CreatedAt)
	if !t.ExpiresAt.IsZero() {
		item[attrExpiresAt] = seconds(t.ExpiresAt)
	}
	_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return token.ErrExists
	}
	if err != nil {
		return fmt.Errorf("put token %s: %w", t.Hash.ID(), err)
	}
	return nil
}

// ExtendToken sets a stored token's expiry (and its expiresAt, for TTL);
// it returns router.ErrNotFound if the token is not stored (it was revoked).
func (s *Store) ExtendToken(ctx context.Context, h token.Hash, expiresAt time.Time) error {
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       key(pkTokens, h.String()),
		UpdateExpression:          aws.String("SET expiresAt = :e"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":e": seconds(expiresAt)},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return router.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("extend token %s: %w", h.ID(), err)
	}
	return nil
}

// Tokens returns every stored token, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]token.Token, error) {
	in := &dynamodb.QueryInput{
		TableName:                 s.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pkTokens)},
		ConsistentRead:            aws.Bool(true),
	}
	var out []token.Token
	for {
		page, err := s.api.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("query tokens: %w", err)
		}
		for _, item := range page.Items {
			t, err := tokenFrom(item)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	slices.SortStableFunc(out, func(a, b token.Token) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// DeleteToken removes a token; it returns router.ErrNotFound if there is none.
func (s *Store) DeleteToken(ctx context.Context, h token.Hash) error {
	_, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: s.table, Key: key(pkTokens, h.String()), ConditionExpression: aws.String("attribute_exists(pk)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return router.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete token %s: %w", h.ID(), err)
	}
	return nil
}

func tokenFrom(item map[string]types.AttributeValue) (token.Token, error) {
	h, err := token.ParseHash(strOf(item[attrSK]))
	if err != nil {
		return token.Token{}, fmt.Errorf("stored token: %w", err)
	}
	t := token.Token{
		Hash:      h,
		Name:      strOf(item[attrName]),
		CreatedAt: timeMillis(item[attrCreatedAt]),
	}
	if l, ok := item[attrGroups].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			t.Groups = append(t.Groups, strOf(v))
		}
	}
	if b, ok := item[attrAllGroups].(*types.AttributeValueMemberBOOL); ok {
		t.AllGroups = b.Value
	}
	if _, ok := item[attrExpiresAt]; ok {
		t.ExpiresAt = timeSeconds(item[attrExpiresAt])
	}
	return t, nil
}

// expired reports whether an item's expiresAt has passed: DynamoDB's TTL
// deletes expired items only eventually, so reads must skip them.
func (s *Store) expired(item map[string]types.AttributeValue) bool {
	n := numOf(item[attrExpiresAt])
	if n == "" {
		return false
	}
	exp, err := strconv.ParseInt(n, 10, 64)
	return err == nil && exp <= s.cfg.Now().Unix()
}

func backoff(attempt int) time.Duration {
	base := 10 * time.Millisecond << min(attempt, 5)
	return base/2 + rand.N(base/2)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func millis(t time.Time) types.AttributeValue { return num(t.UnixMilli()) }

// seconds is the epoch-seconds form that DynamoDB's TTL reads.
func seconds(t time.Time) types.AttributeValue { return num(t.Unix()) }

func strOf(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func numOf(v types.AttributeValue) string {
	if n, ok := v.(*types.AttributeValueMemberN); ok {
		return n.Value
	}
	return ""
}

func timeMillis(v types.AttributeValue) time.Time {
	n, err := strconv.ParseInt(numOf(v), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func timeSeconds(v types.AttributeValue) time.Time {
	n, err := strconv.ParseInt(numOf(v), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}
