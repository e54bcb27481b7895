package dag

// slab hands out values of T allocated by the chunk: one allocation for
// many values, where the job makes one value per task or per attempt. Its
// first chunks are small, so that a small job allocates little, and they
// double up to the most its owner asks for. A value kept keeps its whole
// chunk alive. The zero slab is ready to use; it is not safe for
// concurrent use.
type slab[T any] struct {
	free  []T // values not handed out yet
	chunk int // the size of the last chunk
}

// next returns a zero value of T to fill in, from chunks of at most most
// values.
func (s *slab[T]) next(most int) *T {
	if len(s.free) == 0 {
		s.chunk = min(max(2*s.chunk, 4), most)
		s.free = make([]T, s.chunk)
	}
	v := &s.free[0]
	s.free = s.free[1:]
	return v
}
