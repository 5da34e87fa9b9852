package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildTaskgate builds ./cmd/taskgate of root into dir as the Dockerfile
// does (static, CGO_ENABLED=0, -trimpath) and returns the binary's path.
func BuildTaskgate(root, dir string) (string, error) {
	bin := filepath.Join(dir, "taskgate")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/taskgate")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/taskgate: %w\n%s", err, out)
	}
	return bin, nil
}

var taskgateOnce struct {
	sync.Once
	bin, tempDir string
	err          error
}

// TaskgateBinary builds ./cmd/taskgate of root (BuildTaskgate) once per test
// binary, into dir, or a new temporary directory when dir is "", and fails t
// if that build failed.
func TaskgateBinary(t testing.TB, root, dir string) string {
	t.Helper()
	taskgateOnce.Do(func() {
		if dir == "" {
			if dir, taskgateOnce.err = os.MkdirTemp("", "taskgate-bin-"); taskgateOnce.err != nil {
				return
			}
			taskgateOnce.tempDir = dir
		}
		taskgateOnce.bin, taskgateOnce.err = BuildTaskgate(root, dir)
	})
	if taskgateOnce.err != nil {
		t.Fatal(taskgateOnce.err)
	}
	return taskgateOnce.bin
}

// RemoveTaskgateBinary removes the temporary directory TaskgateBinary made,
// if it made one; TestMain calls it when the tests are done.
func RemoveTaskgateBinary() {
	if taskgateOnce.tempDir != "" {
		_ = os.RemoveAll(taskgateOnce.tempDir)
	}
}

// Process is a subprocess (taskgate, typically); its output is kept for
// failure reports.
type Process struct {
	Cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
	err  error
}

// StartProcess runs bin with args and KUBECONFIG=kubeconfig, plus env.
func StartProcess(bin, kubeconfig string, env []string, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig), env...)
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{Cmd: cmd, out: out, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Output is what the process wrote so far, stdout and stderr interleaved.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool { return Closed(p.done) }

// Closed reports, without waiting, whether ch is closed.
func Closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Err is how the process ended (nil while it runs).
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Kill sends SIGKILL, as `kill -9` would, and waits for the process to end.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Process) Stop(timeout time.Duration) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}

// WaitOutput waits until the process has written s.
func (p *Process) WaitOutput(s string, timeout time.Duration) error {
	return p.WaitFor(timeout, func(out string) error {
		if !strings.Contains(out, s) {
			return fmt.Errorf("no %q yet", s)
		}
		return nil
	})
}

// WaitFor polls check with the output so far until it returns nil, the
// process exits or timeout passes.
func (p *Process) WaitFor(timeout time.Duration, check func(output string) error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check(p.Output())
		switch {
		case err == nil:
			return nil
		case p.Exited():
			return fmt.Errorf("process exited (%v): %w:\n%s", p.err, err, p.Output())
		case time.Now().After(deadline):
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
