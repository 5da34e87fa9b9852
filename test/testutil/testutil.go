// Package testutil holds the few helpers the integration test packages
// share: stopping a control plane however a test binary ends, a buffer
// that a process writes while a test reads it, and the Helm chart's
// rendering (chart.go), the one source of the manager's RBAC.
package testutil

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// StopOnSignalOrTimeout calls stop on SIGINT/SIGTERM (then exits 130), and a
// few seconds before -test.timeout makes the binary panic, which would skip
// every deferred Stop and leave etcd and kube-apiserver running.
func StopOnSignalOrTimeout(stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "%v: stopping the control plane\n", s)
		stop()
		os.Exit(130)
	}()
	f := flag.Lookup("test.timeout")
	if f == nil {
		return
	}
	timeout, ok := f.Value.(flag.Getter).Get().(time.Duration)
	if !ok || timeout <= 0 {
		return
	}
	time.AfterFunc(timeout-min(15*time.Second, timeout/5), func() {
		fmt.Fprintln(os.Stderr, "test timeout is near: stopping the control plane")
		stop()
	})
}

// SyncBuffer is a bytes.Buffer safe for one writer (a process's output, a
// logger) and concurrent readers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
