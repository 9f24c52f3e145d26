package main

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Message kinds.
const (
	kindGroup uint8 = iota
	kindDirect
	kindGlobal
)

var kindNames = [...]string{"GROUP", "DIRECT", "GLOBAL"}

// message is one EVENT a client sent; its id on the wire is "m<seq>", seq
// being its index in tally.msgs.
type message struct {
	sentAt int64 // nanoseconds since the clients' start, just before the write
	sender int32 // session index
	target int32 // group index (GROUP), session index (DIRECT), unused (GLOBAL)
	kind   uint8
	failed bool // the write failed: never sent
}

// span is the life of one identified connection, as its client saw it.
type span struct {
	group        int32
	identifiedAt int64 // when it was a member: its handshake done (required), its IDENTIFY answer read (off)
	endAt        int64 // when it stopped being usable: a fault began, or the server closed it
}

// tally records every identified connection and every message, so that the
// deliveries can be judged once everything has ended.
type tally struct {
	mu       sync.RWMutex
	sessions []*session
	msgs     []message
}

// addSession records an identified connection and gives it its index.
func (t *tally) addSession(s *session) {
	t.mu.Lock()
	s.idx = int32(len(t.sessions))
	t.sessions = append(t.sessions, s)
	t.mu.Unlock()
}

// addMessage records a message about to be written and returns its seq.
func (t *tally) addMessage(m message) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.msgs = append(t.msgs, m)
	return uint32(len(t.msgs) - 1)
}

// failMessage marks a message whose write failed.
func (t *tally) failMessage(seq uint32) {
	t.mu.Lock()
	t.msgs[seq].failed = true
	t.mu.Unlock()
}

// lookup returns message seq and its sender's service id, or false when
// there is no such message.
func (t *tally) lookup(seq uint64) (message, string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if seq >= uint64(len(t.msgs)) {
		return message{}, "", false
	}
	m := t.msgs[seq]
	return m, t.sessions[m.sender].sid, true
}

// verdict is the judgement of every (message, recipient) pair.
type verdict struct {
	Expected        int64 `json:"expected"`
	Lost            int64 `json:"lost"`
	InDoubt         int64 `json:"inDoubt"`
	InDoubtReceived int64 `json:"inDoubtReceived"`
	Duplicates      int64 `json:"duplicates"`
	// LostSamples describe a few lost deliveries, for investigation.
	LostSamples []string `json:"lostSamples,omitempty"`
}

// judge decides every pair once all sessions have ended. receipts[i] is
// the sorted message seqs that session i read (with repeats).
//
// A pair (message M sent at t by S, recipient R) is expected when R is in
// M's target set, R is not S, R was a member before t (its handshake had
// completed with connect auth, its IDENTIFY answer had arrived without),
// and both S and R stayed up until t+grace; it is in doubt when R was a
// member and a target at t but S or R stopped within grace. Pairs of a
// recipient that became a member after t or ended before t are not judged.
func judge(spans []span, msgs []message, receipts [][]uint32, grace time.Duration) verdict {
	var v verdict
	for _, r := range receipts {
		for i := 1; i < len(r); i++ {
			if r[i] == r[i-1] && (i == 1 || r[i-2] != r[i]) {
				v.Duplicates++ // a pair received more than once counts once
			}
		}
	}
	byGroup := map[int32][]int32{}
	all := make([]int32, len(spans))
	for i, s := range spans {
		byGroup[s.group] = append(byGroup[s.group], int32(i))
		all[i] = int32(i)
	}
	g := int64(grace)
	for seq, m := range msgs {
		if m.failed {
			continue
		}
		var targets []int32
		switch m.kind {
		case kindGroup:
			targets = byGroup[m.target]
		case kindDirect:
			targets = []int32{m.target}
		case kindGlobal:
			targets = all
		}
		senderUp := spans[m.sender].endAt >= m.sentAt+g
		for _, r := range targets {
			rs := spans[r]
			if r == m.sender || rs.identifiedAt >= m.sentAt || rs.endAt <= m.sentAt {
				continue
			}
			_, got := slices.BinarySearch(receipts[r], uint32(seq))
			if senderUp && rs.endAt >= m.sentAt+g {
				v.Expected++
				if !got {
					v.Lost++
					if len(v.LostSamples) < 10 {
						v.LostSamples = append(v.LostSamples, fmt.Sprintf(
							"%s m%d sent at %s by session %d (up %s–%s) to session %d (up %s–%s)",
							kindNames[m.kind], seq, at(m.sentAt), m.sender, at(spans[m.sender].identifiedAt), at(spans[m.sender].endAt),
							r, at(rs.identifiedAt), at(rs.endAt)))
					}
				}
				continue
			}
			v.InDoubt++
			if got {
				v.InDoubtReceived++
			}
		}
	}
	return v
}

// at formats nanoseconds since the clients' start.
func at(ns int64) string {
	if ns == math.MaxInt64 {
		return "end"
	}
	return time.Duration(ns).Round(time.Millisecond).String()
}

// percentile returns the p-th percentile (0–100) of sorted samples.
func percentile(sorted []uint32, p float64) uint32 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
