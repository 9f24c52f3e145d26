package localrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// DefaultTokenLease is how long the local gateway's token stays valid
// without renewal: the most a killed gateway leaves it working.
const DefaultTokenLease = time.Hour

// leaseName names the tokens that local gateways store, so that a later run
// can tell its own kind from tokens an operator made with socketctl.
const leaseName = "localgw"

// tokenLease keeps the local gateway's token valid while it runs: stored
// with an expiry a lease away, pushed back every third of a lease, and
// deleted on stop. A token the run did not store (an operator's, given with
// --token) is used as it is and left alone.
type tokenLease struct {
	store Registry
	hash  token.Hash
	lease time.Duration
	log   *slog.Logger
	owned bool
}

// startLease stores the token, or takes over one that an earlier local
// gateway (killed before it could remove it) left behind and that has
// expired. One whose lease still runs belongs to a local gateway that is
// running with the same --token: it is used, and left to that gateway.
func startLease(ctx context.Context, store Registry, plain string, lease time.Duration, log *slog.Logger) (tokenLease, error) {
	l := tokenLease{store: store, hash: token.HashOf(plain), lease: lease, log: log}
	now := time.Now()
	err := store.PutToken(ctx, token.Token{Hash: l.hash, Name: leaseName, AllGroups: true, CreatedAt: now, ExpiresAt: now.Add(lease)})
	switch {
	case err == nil:
		l.owned = true
	case errors.Is(err, token.ErrExists):
		t, err := store.Token(ctx, l.hash)
		if err != nil {
			return l, fmt.Errorf("read the stored token: %w", err)
		}
		if t.Name != leaseName {
			log.Info("the token is one of the table's own; it is used as it is and kept on stop", "token", l.hash.ID(), "name", t.Name)
			return l, nil
		}
		if !t.Expired(now) {
			log.Warn("another local gateway holds this token's lease: it is used, and removed when that gateway stops", "token", l.hash.ID())
			return l, nil
		}
		if err := store.ExtendToken(ctx, l.hash, now.Add(lease)); err != nil {
			return l, fmt.Errorf("renew the token: %w", err)
		}
		l.owned = true
	default:
		return l, fmt.Errorf("store the token: %w", err)
	}
	return l, nil
}

// renew pushes the expiry back every third of a lease until ctx ends.
func (l tokenLease) renew(ctx context.Context, wg *sync.WaitGroup) {
	if !l.owned {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(l.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := l.store.ExtendToken(ctx, l.hash, time.Now().Add(l.lease))
			switch {
			case errors.Is(err, router.ErrNotFound):
				l.log.Warn("the local gateway's token was revoked: IDENTIFY with it fails from now on", "token", l.hash.ID())
				return
			case err != nil && ctx.Err() == nil:
				l.log.Warn("could not renew the local gateway's token; trying again", "token", l.hash.ID(), "err", err)
			}
		}
	}()
}

// release deletes the token if this run stored it.
func (l tokenLease) release() {
	if !l.owned {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.store.DeleteToken(ctx, l.hash); err != nil && !errors.Is(err, router.ErrNotFound) {
		l.log.Warn("could not remove the local gateway's token; it expires on its own", "token", l.hash.ID(), "err", err)
	}
}
