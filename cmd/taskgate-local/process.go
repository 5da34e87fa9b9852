package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is a subprocess this program started and stops: the manager, and
// kube-controller-manager, kube-scheduler and kwok. Each writes to a log in
// the state dir and runs in its own process group, so a Ctrl-C in the
// terminal reaches this program alone, which then stops them in order,
// before the API server goes away.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{} // closed when the process has exited
	waitErr error
}

// startProcess starts bin with args (and env added to this program's),
// then waits up to 90 seconds until ready reports true. It returns the
// process whenever it started, also with an error, so the caller can stop
// it.
func startProcess(ctx context.Context, name, bin, logPath string, env []string, ready func() bool, args ...string) (*process, error) {
	p := &process{name: name, logPath: logPath, exited: make(chan struct{})}
	var err error
	if p.logFile, err = os.Create(logPath); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logFile, p.logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		_ = p.logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()

	deadline := time.After(90 * time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-p.exited:
			return p, fmt.Errorf("%s exited: %v\n%s", name, p.waitErr, tail(logPath, 20))
		case <-deadline:
			return p, fmt.Errorf("%s not ready after 90s\n%s", name, tail(logPath, 20))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the process group, as a kubelet would, and SIGKILL
// if it has not exited after grace.
func (p *process) stop(grace time.Duration) error {
	defer p.logFile.Close()
	select {
	case <-p.exited:
		return nil
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
		return errors.New(p.name + " ignored SIGTERM for " + grace.String() + " and was killed")
	}
}
