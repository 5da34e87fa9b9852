package main

import (
	"cmp"
	"sync"
	"sync/atomic"
)

// inParallel calls do(i) for every i in [0, n) on workers goroutines, each
// taking the next i; a goroutine stops at its first error. The returned
// channel carries those errors and is closed once every goroutine is done.
func inParallel(n, workers int, do func(i int) error) <-chan error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := do(i); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(errc) }()
	return errc
}

// firstError waits until errc is closed and returns the first error it
// carried, or nil.
func firstError(errc <-chan error) error {
	var first error
	for err := range errc {
		first = cmp.Or(first, err)
	}
	return first
}
