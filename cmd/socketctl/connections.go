package main

// The connections command: a gateway's connections, by group.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mastersocket/mastersocket/internal/protocol"
	"github.com/mastersocket/mastersocket/internal/router"
)

// parallel bounds the management API calls in flight (GetConnection for
// connections, PostToConnection for send), as the sweeper's default does.
const parallel = 16

// connRow is one connection as `socketctl connections` shows it.
type connRow struct {
	// Group and ServiceID are "" for an anonymous connection.
	Group        string    `json:"group"`
	ServiceID    string    `json:"serviceId"`
	ConnectionID string    `json:"connectionId"`
	ConnectedAt  time.Time `json:"connectedAt"`
	// LastActiveAt is GetConnection's lastActiveAt: when the gateway last
	// received a frame from the client; nil when gone or unknown.
	LastActiveAt *time.Time `json:"lastActiveAt"`
	// Gone: the gateway no longer has the connection (410).
	Gone bool `json:"gone"`
	// Error is why GetConnection failed otherwise.
	Error string `json:"error,omitempty"`
}

func (c *cli) connections(ctx context.Context, fs *flag.FlagSet, args []string) error {
	group := fs.String("group", "", "only the connections of `GROUP`")
	asJSON := fs.Bool("json", false, "print one JSON object a line")
	rest, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, rest); err != nil {
		return err
	}
	if *group != "" && !protocol.ValidGroup(*group) {
		return usageError(fmt.Sprintf("connections: --group %q is not a group name: want 1 to %d characters of A-Z a-z 0-9 . _ : -", *group, protocol.MaxGroupLen))
	}
	store, gw, endpoint, err := c.storeAndGateway(ctx, fs)
	if err != nil {
		return err
	}

	var (
		mu   sync.Mutex
		rows []connRow
		now  = time.Now()
	)
	err = store.Connections(ctx, endpoint, func(page []router.Connection) error {
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range page {
			if !conn.ExpiresAt.IsZero() && !conn.ExpiresAt.After(now) {
				continue // TTL removes expired items only eventually
			}
			row := connRow{ConnectionID: conn.ID, ConnectedAt: conn.ConnectedAt}
			if id := conn.Identity; id != nil {
				row.Group, row.ServiceID = id.Group, id.ServiceID
			}
			if *group == "" || row.Group == *group {
				rows = append(rows, row)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list connections: %w", err)
	}

	// Ask the gateway about each, parallel at a time.
	var (
		wg       sync.WaitGroup
		slots    = make(chan struct{}, parallel)
		failures []error
	)
	for i := range rows {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			st, err := gw.Status(ctx, rows[i].ConnectionID)
			switch {
			case errors.Is(err, router.ErrGone):
				rows[i].Gone = true
			case err != nil:
				rows[i].Error = err.Error()
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			default:
				last := st.LastActiveAt.UTC()
				rows[i].LastActiveAt = &last
			}
		}()
	}
	wg.Wait()

	slices.SortFunc(rows, func(a, b connRow) int {
		// Groups by name, anonymous connections last; then oldest first.
		if (a.Group == "") != (b.Group == "") {
			if a.Group == "" {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Group, b.Group), a.ConnectedAt.Compare(b.ConnectedAt),
			cmp.Compare(a.ServiceID, b.ServiceID), cmp.Compare(a.ConnectionID, b.ConnectionID))
	})
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else if len(rows) > 0 {
		if err := printConnections(c, rows, now); err != nil {
			return err
		}
	}
	c.summarize(rows, endpoint, *group)
	if len(failures) > 0 {
		return fmt.Errorf("the gateway could not say how %d of the connections are: %w", len(failures), failures[0])
	}
	return nil
}

// printConnections writes the rows as a table.
func printConnections(c *cli, rows []connRow, now time.Time) error {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "GROUP\tSERVICE ID\tCONNECTION ID\tCONNECTED\tLAST ACTIVE")
	for _, r := range rows {
		group, service := r.Group, r.ServiceID
		if service == "" {
			group, service = "-", "(anonymous)"
		}
		var last string
		switch {
		case r.Gone:
			last = "gone (the gateway no longer has it)"
		case r.LastActiveAt == nil:
			last = "unknown (GetConnection failed)"
		default:
			last = r.LastActiveAt.Format(time.RFC3339) + " (" + ago(now, *r.LastActiveAt) + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", group, service, r.ConnectionID, r.ConnectedAt.UTC().Format(time.RFC3339), last)
	}
	return w.Flush()
}

// summarize tells, on stderr, what the listing holds, and what an empty
// listing may mean.
func (c *cli) summarize(rows []connRow, endpoint, group string) {
	if len(rows) == 0 {
		if group != "" {
			fmt.Fprintf(c.stderr, "no connection of group %s is recorded by the gateway %s in table %s.\n", group, endpoint, c.table)
			return
		}
		fmt.Fprintf(c.stderr, "no connection is recorded by the gateway %s in table %s.\n"+
			"A gateway records its connections under its management endpoint exactly: the stack's ManagementEndpoint\n"+
			"output, or a local gateway's http://127.0.0.1:3001/dev (whose default memory store socketctl cannot read).\n", endpoint, c.table)
		return
	}
	groups := map[string]bool{}
	var anonymous, gone int
	for _, r := range rows {
		if r.ServiceID == "" {
			anonymous++
		} else {
			groups[r.Group] = true
		}
		if r.Gone {
			gone++
		}
	}
	fmt.Fprintf(c.stderr, "%s in %s", plural(len(rows), "connection"), plural(len(groups), "group"))
	if anonymous > 0 {
		fmt.Fprintf(c.stderr, ", %d anonymous", anonymous)
	}
	if gone > 0 {
		fmt.Fprintf(c.stderr, "; %d gone at the gateway (their items go with their $disconnect, or the next sweep)", gone)
	}
	fmt.Fprintln(c.stderr, ".")
}

// ago says how long before now t was, to the second.
func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d <= 0 {
		return "just now"
	}
	return d.String() + " ago"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
