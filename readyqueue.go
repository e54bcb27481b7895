package dag

// The ready queue is a binary heap of keys that order tasks critical path
// first (the highest rank), then in declaration order (the tasks an Expand
// adds come after the job's own), packed into one integer: comparing keys
// touches no other memory. A heap of integers rather than container/heap
// also avoids boxing each push.
//
// A task that leaves the Ready state while queued (its group stopped) is
// dropped when it reaches the top.

func (s *scheduler) readyKey(id int32) uint64 {
	sc, l := s.loc(id)
	rank := sc.g.rank[l] + sc.rankBase
	return uint64(1<<31-1-rank)<<32 | uint64(id)
}

// push queues task id. s.mu is held.
func (s *scheduler) push(id int32) {
	h := append(s.ready, s.readyKey(id))
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
	for len(s.ready) > 0 {
		id := s.popKey()
		if s.nodes[id].state == Ready {
			return id, true
		}
	}
	return 0, false
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
