package dag

// The ready queue orders tasks critical path first (the highest rank),
// then in declaration order (the tasks an Expand adds come after the job's
// own), by keys packed into one integer: comparing keys touches no other
// memory.
//
// It is a binary heap of keys, beside a sorted run: a key greater than
// every key of the run is appended to it, any other goes to the heap, and
// pop takes the least of the run's first key and the heap's top. Tasks let
// through together (the hundred dependents of one task) are queued in
// declaration order, which is key order when their ranks are equal, so
// they go to the run, and each costs a push and a pop of O(1) rather than
// O(log n). A heap of integers rather than container/heap also avoids
// boxing each push.
//
// A task that leaves the Ready state while queued (its group stopped) is
// dropped when it reaches the front.

func (s *scheduler) readyKey(id int32) uint64 {
	sc, l := s.loc(id)
	rank := sc.g.rank[l] + sc.rankBase
	return uint64(1<<31-1-rank)<<32 | uint64(id)
}

// push queues task id. s.mu is held.
func (s *scheduler) push(id int32) {
	k := s.readyKey(id)
	if s.runAt == len(s.run) {
		s.run, s.runAt = s.run[:0], 0
	}
	if len(s.run) == 0 || k > s.run[len(s.run)-1] {
		s.run = append(s.run, k)
		return
	}
	h := append(s.ready, k)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	s.ready = h
}

// pop takes the first ready task, if any. s.mu is held.
func (s *scheduler) pop() (int32, bool) {
	for {
		var id int32
		switch {
		case s.runAt < len(s.run) && (len(s.ready) == 0 || s.run[s.runAt] < s.ready[0]):
			id = int32(uint32(s.run[s.runAt]))
			s.runAt++
		case len(s.ready) > 0:
			id = s.popKey()
		default:
			return 0, false
		}
		if s.nodes[id].state == Ready {
			return id, true
		}
	}
}

// clearReady empties the queue. s.mu is held.
func (s *scheduler) clearReady() {
	s.ready, s.run, s.runAt = s.ready[:0], s.run[:0], 0
}

func (s *scheduler) popKey() int32 {
	h := s.ready
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h[r] < h[c] {
			c = r
		}
		if h[i] <= h[c] {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	s.ready = h
	return int32(uint32(top))
}
