// Package dynamostore is the registry of connections, services, groups and
// tokens on one DynamoDB table (on-demand, key pk/sk, TTL on expiresAt).
//
// Items, all carrying expiresAt (epoch seconds) so that a missed
// $disconnect never leaves a mapping behind for ever:
//
//	pk               sk             attributes
//	CONN#<conn id>   META           connectedAt, connShard, sourceIp, userAgent; once identified: serviceId, group, shard, identifiedAt
//	SVC#<service id> META           connId, group
//	GROUP#<group>    CONN#<conn id> serviceId
//	ALL#<shard>      CONN#<conn id> serviceId, group
//	TOKEN            <sha256 hex>   name, groups, allGroups, createdAt (expiresAt only when the token expires)
//
// Access patterns: the identity of a connection and the connection of a
// service are one GetItem each; a GROUP is one Query per page; GLOBAL is one
// Query per shard, run in parallel; IDENTIFY is one TransactWriteItems; no
// message path ever scans. The sweeper lists every connection item, identified
// or not, through the global secondary index "connections" (hash connShard =
// CONNS#<gateway hash>#<shard>, range connectedAt): one Query per shard and
// page, in parallel, for the connections of one gateway; the index holds
// only connection items. Reads are strongly consistent, so that a message
// sent right after an IDENTIFY answer reaches and is sent by the new member.
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
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// DefaultShards is the number of partitions GLOBAL membership is spread over.
const DefaultShards = 4

// Config tunes a Store. Zero fields mean their documented defaults.
type Config struct {
	// Table is the table name; required.
	Table string
	// Shards is the number of ALL#<n> partitions that spread the GLOBAL
	// membership, and of CONNS#<n> partitions of the connections index;
	// GLOBAL and a sweep cost one Query per shard. Default 4. Raising it is
	// safe at any time; lowering it hides the connections of the dropped
	// shards from GLOBAL and from the sweeper until they reconnect.
	Shards int
	// PageSize caps the items of one Query page; zero lets DynamoDB fill
	// pages up to 1 MB.
	PageSize int32
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Store is a registry on a DynamoDB table. It is safe for concurrent use.
type Store struct {
	api   API
	table *string
	cfg   Config
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
	attrShard        = "shard"
	attrIdentifiedAt = "identifiedAt"
	attrConnID       = "connId"
	attrName         = "name"
	attrGroups       = "groups"
	attrAllGroups    = "allGroups"
	attrCreatedAt    = "createdAt"
	attrConnShard    = "connShard"

	// IndexConnections is the global secondary index of connection items.
	IndexConnections = "connections"

	skMeta     = "META"
	connPrefix = "CONN#"
	pkTokens   = "TOKEN"
)

func connKey(connID string) map[string]types.AttributeValue {
	return key(connPrefix+connID, skMeta)
}

func serviceKey(serviceID string) map[string]types.AttributeValue {
	return key("SVC#"+serviceID, skMeta)
}

func groupPK(group string) string { return "GROUP#" + group }

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

// shardOf spreads connections over the GLOBAL shards.
func (s *Store) shardOf(connID string) int {
	h := fnv.New32a()
	h.Write([]byte(connID))
	return int(h.Sum32() % uint32(s.cfg.Shards))
}

// AddConnection records a new connection: with one PutItem when it is
// anonymous; with c.Identity, in one TransactWriteItems that writes the
// connection identified together with its service, group and GLOBAL items,
// the same transaction Identify makes.
func (s *Store) AddConnection(ctx context.Context, c router.Connection) error {
	shard := s.shardOf(c.ID)
	item := connKey(c.ID)
	item[attrConnectedAt] = millis(c.ConnectedAt)
	item[attrConnShard] = str(connShardKey(c.Gateway, shard))
	item[attrExpiresAt] = seconds(c.ExpiresAt)
	if c.SourceIP != "" {
		item[attrSourceIP] = str(c.SourceIP)
	}
	if c.UserAgent != "" {
		item[attrUserAgent] = str(c.UserAgent)
	}
	if c.Identity == nil {
		if _, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: s.table, Item: item}); err != nil {
			return fmt.Errorf("put connection %s: %w", c.ID, err)
		}
		return nil
	}
	id := c.Identity
	item[attrServiceID] = str(id.ServiceID)
	item[attrGroup] = str(id.Group)
	item[attrShard] = num(int64(shard))
	item[attrIdentifiedAt] = millis(id.IdentifiedAt)
	conn := types.TransactWriteItem{Put: &types.Put{TableName: s.table, Item: item}}
	err := s.writeIdentity(ctx, c, shard, conn)
	var reason cancelled
	if errors.As(err, &reason) {
		// Only the service item has a condition: its id is taken.
		return router.ErrAlreadyIdentified
	}
	if err != nil {
		return fmt.Errorf("put identified connection %s: %w", c.ID, err)
	}
	return nil
}

// Identify gives a recorded, live, anonymous connection its identity and
// writes its service, group and GLOBAL items, in one TransactWriteItems.
func (s *Store) Identify(ctx context.Context, c router.Connection) error {
	if c.Identity == nil {
		return errors.New("identify: no identity given")
	}
	id := c.Identity
	shard := s.shardOf(c.ID)
	conn := types.TransactWriteItem{Update: &types.Update{
		TableName:           s.table,
		Key:                 connKey(c.ID),
		UpdateExpression:    aws.String("SET #s = :s, #g = :g, #sh = :sh, #t = :t"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND attribute_not_exists(#s) AND #e > :now"),
		ExpressionAttributeNames: map[string]string{ // "shard" and "group" are reserved words
			"#pk": attrPK, "#s": attrServiceID, "#g": attrGroup, "#sh": attrShard, "#t": attrIdentifiedAt, "#e": attrExpiresAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":s":   str(id.ServiceID),
			":g":   str(id.Group),
			":sh":  num(int64(shard)),
			":t":   millis(id.IdentifiedAt),
			":now": seconds(s.cfg.Now()),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
	err := s.writeIdentity(ctx, c, shard, conn)
	var reason cancelled
	switch {
	case errors.As(err, &reason) && reason.index == 0:
		return s.whyNotIdentifiable(ctx, c.ID, reason.item)
	case errors.As(err, &reason):
		return router.ErrAlreadyIdentified // the service id is taken
	case err != nil:
		return fmt.Errorf("identify %s: %w", c.ID, err)
	}
	return nil
}

// cancelled is a transaction refused by the condition of its item index;
// item is that item as the condition saw it, when DynamoDB returns it.
type cancelled struct {
	index int
	item  map[string]types.AttributeValue
}

func (c cancelled) Error() string { return fmt.Sprintf("condition of item %d failed", c.index) }

// writeIdentity writes, in one TransactWriteItems, conn (the write of
// connection c's item, in GLOBAL shard shard) and the items that make c.Identity reachable: its
// service (on condition that no other connection has it), its group
// membership and its GLOBAL shard membership. A transaction that conflicts
// with another is tried again; one refused by a condition returns
// cancelled.
func (s *Store) writeIdentity(ctx context.Context, c router.Connection, shard int, conn types.TransactWriteItem) error {
	id := c.Identity
	exp := seconds(c.ExpiresAt)
	member := func(pk string) map[string]types.AttributeValue {
		item := key(pk, connPrefix+c.ID)
		item[attrServiceID] = str(id.ServiceID)
		item[attrGroup] = str(id.Group)
		item[attrExpiresAt] = exp
		return item
	}
	svc := serviceKey(id.ServiceID)
	svc[attrConnID] = str(c.ID)
	svc[attrGroup] = str(id.Group)
	svc[attrExpiresAt] = exp

	in := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		conn,
		{Put: &types.Put{TableName: s.table, Item: svc, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Put: &types.Put{TableName: s.table, Item: member(groupPK(id.Group))}},
		{Put: &types.Put{TableName: s.table, Item: member(shardPK(shard))}},
	}}
	for attempt := 1; ; attempt++ {
		_, err := s.api.TransactWriteItems(ctx, in)
		if err == nil {
			return nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) || len(tce.CancellationReasons) == 0 {
			return err
		}
		if i := slices.IndexFunc(tce.CancellationReasons, func(r types.CancellationReason) bool {
			return aws.ToString(r.Code) == "ConditionalCheckFailed"
		}); i >= 0 {
			return cancelled{index: i, item: tce.CancellationReasons[i].Item}
		}
		if !slices.ContainsFunc(tce.CancellationReasons, isConflict) || attempt >= maxConflictAttempts {
			return err
		}
		// Another transaction (a concurrent IDENTIFY) holds an item: try
		// again, and its outcome decides ours.
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
	}
}

// maxConflictAttempts bounds the tries of a transaction, or a write, that
// another transaction holds up.
const maxConflictAttempts = 8

func isConflict(r types.CancellationReason) bool {
	return aws.ToString(r.Code) == "TransactionConflict"
}

// isTransactionConflict reports a write refused because a transaction holds
// the item: DynamoDB answers that to a plain write racing a
// TransactWriteItems, and the SDK does not retry it.
func isTransactionConflict(err error) bool {
	var tce *types.TransactionConflictException
	return errors.As(err, &tce)
}

// whyNotIdentifiable turns a failed IDENTIFY condition into ErrNotFound or
// ErrAlreadyIdentified, from the item the condition saw when DynamoDB
// returns it, or from a fresh read otherwise.
func (s *Store) whyNotIdentifiable(ctx context.Context, connID string, item map[string]types.AttributeValue) error {
	if item == nil {
		var err error
		if item, err = s.getConnAny(ctx, connID); err != nil {
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

// getConn reads a live connection item, or returns router.ErrNotFound.
func (s *Store) getConn(ctx context.Context, connID string) (map[string]types.AttributeValue, error) {
	item, err := s.getConnAny(ctx, connID)
	if err != nil {
		return nil, err
	}
	if item == nil || s.expired(item) {
		return nil, router.ErrNotFound
	}
	return item, nil
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
// router.ErrNotFound.
func (s *Store) ServiceConnection(ctx context.Context, serviceID string) (string, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:            s.table,
		Key:                  serviceKey(serviceID),
		ConsistentRead:       aws.Bool(true),
		ProjectionExpression: aws.String("connId, expiresAt"),
	})
	if err != nil {
		return "", fmt.Errorf("get service %s: %w", serviceID, err)
	}
	if len(out.Item) == 0 || s.expired(out.Item) {
		return "", router.ErrNotFound
	}
	return strOf(out.Item[attrConnID]), nil
}

// GroupMembers calls fn with each page of the group's live members: one
// Query per page.
func (s *Store) GroupMembers(ctx context.Context, group string, fn func([]router.Member) error) error {
	return s.members(ctx, groupPK(group), fn)
}

// AllMembers calls fn with each page of every live identified connection,
// querying the GLOBAL shards in parallel; fn is called from one goroutine
// per shard. The first error stops the other shards.
func (s *Store) AllMembers(ctx context.Context, fn func([]router.Member) error) error {
	return s.eachShard(ctx, func(ctx context.Context, shard int) error {
		return s.members(ctx, shardPK(shard), fn)
	})
}

// Connections calls fn with each page of every connection item of a
// gateway (router.Connection.Gateway), identified or not, expired or not (TTL deletes items only eventually): one Query of
// the connections index per shard and page, the shards in parallel, so fn
// is called from one goroutine per shard. The index is eventually
// consistent: a connection recorded a moment ago may be missing, and one
// removed a moment ago may still be listed.
func (s *Store) Connections(ctx context.Context, gateway string, fn func([]router.Connection) error) error {
	return s.eachShard(ctx, func(ctx context.Context, shard int) error {
		in := &dynamodb.QueryInput{
			TableName:                 s.table,
			IndexName:                 aws.String(IndexConnections),
			KeyConditionExpression:    aws.String("#cs = :cs"),
			ExpressionAttributeNames:  map[string]string{"#cs": attrConnShard},
			ExpressionAttributeValues: map[string]types.AttributeValue{":cs": str(connShardKey(gateway, shard))},
		}
		return queryPages(ctx, s, in, func(item map[string]types.AttributeValue) (router.Connection, bool) {
			id, ok := strings.CutPrefix(strOf(item[attrPK]), connPrefix)
			c := connFrom(id, item)
			c.Gateway = gateway
			return c, ok
		}, fn)
	})
}

// queryPages runs a Query page by page (PageSize items at most each),
// and calls fn with the items of each page that convert keeps.
func queryPages[T any](ctx context.Context, s *Store, in *dynamodb.QueryInput, convert func(map[string]types.AttributeValue) (T, bool), fn func([]T) error) error {
	if s.cfg.PageSize > 0 {
		in.Limit = aws.Int32(s.cfg.PageSize)
	}
	for {
		out, err := s.api.Query(ctx, in)
		if err != nil {
			return fmt.Errorf("query %s: %w", queryName(in), err)
		}
		page := make([]T, 0, len(out.Items))
		for _, item := range out.Items {
			if v, ok := convert(item); ok {
				page = append(page, v)
			}
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
	var key string
	for _, v := range in.ExpressionAttributeValues {
		key = strOf(v)
	}
	if in.IndexName != nil {
		return *in.IndexName + " index " + key
	}
	return key
}

// eachShard runs fn for every shard in parallel; the first error cancels
// the others and is returned.
func (s *Store) eachShard(ctx context.Context, fn func(ctx context.Context, shard int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for shard := range s.cfg.Shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, shard); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		}()
	}
	wg.Wait()
	return first
}

// members queries one membership partition page by page.
func (s *Store) members(ctx context.Context, pk string, fn func([]router.Member) error) error {
	in := &dynamodb.QueryInput{
		TableName:                 s.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		ProjectionExpression:      aws.String("sk, serviceId, expiresAt"),
		ConsistentRead:            aws.Bool(true),
	}
	return queryPages(ctx, s, in, func(item map[string]types.AttributeValue) (router.Member, bool) {
		return router.Member{
			ConnectionID: strings.TrimPrefix(strOf(item[attrSK]), connPrefix),
			ServiceID:    strOf(item[attrServiceID]),
		}, !s.expired(item)
	}, fn)
}

// RemoveConnection deletes a connection's service, group and shard items,
// then the connection item itself, on condition that it has not been
// identified meanwhile. The connection item goes last so that a removal cut
// short is finished by the next one: nothing is ever left unreachable.
func (s *Store) RemoveConnection(ctx context.Context, connID string) error {
	for attempt := 1; ; attempt++ {
		item, err := s.getConnAny(ctx, connID)
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
			continue // identified or removed meanwhile: look again
		case isTransactionConflict(err) && attempt < maxConflictAttempts:
			// An IDENTIFY's transaction holds the item: look again after it.
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("delete connection %s: %w", connID, err)
		}
	}
}

// getConnAny reads a connection item, expired or not; nil if there is none.
func (s *Store) getConnAny(ctx context.Context, connID string) (map[string]types.AttributeValue, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: connKey(connID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("get connection %s: %w", connID, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// deleteMappings deletes the service, group and shard items of an
// identified connection in one BatchWriteItem, retrying unprocessed items.
func (s *Store) deleteMappings(ctx context.Context, connID string, item map[string]types.AttributeValue) error {
	del := func(k map[string]types.AttributeValue) types.WriteRequest {
		return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
	}
	shard, _ := strconv.Atoi(numOf(item[attrShard]))
	requests := map[string][]types.WriteRequest{*s.table: {
		del(serviceKey(strOf(item[attrServiceID]))),
		del(key(groupPK(strOf(item[attrGroup])), connPrefix+connID)),
		del(key(shardPK(shard), connPrefix+connID)),
	}}
	for attempt := 1; len(requests) > 0; attempt++ {
		out, err := s.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: requests})
		switch {
		case isTransactionConflict(err) && attempt < maxConflictAttempts:
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("delete mappings of %s: %w", connID, err)
		}
		requests = out.UnprocessedItems
		if len(requests) > 0 {
			if attempt >= maxConflictAttempts {
				return fmt.Errorf("delete mappings of %s: items still unprocessed after %d attempts", connID, attempt)
			}
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Token returns the stored token whose hash is h, or router.ErrNotFound.
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
