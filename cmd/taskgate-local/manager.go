package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// manager is the `taskgate manager` subprocess.
type manager struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{} // closed when the process has exited
	waitErr error
	// metricsURL is the Prometheus endpoint, on loopback only.
	metricsURL string
}

// startManager runs the real binary as the chart would, but with a local
// kubeconfig and the envtest serving certificate, and waits until it is ready
// and its webhook server answers TLS with that certificate.
func startManager(ctx context.Context, o options, cp *controlPlane) (*manager, error) {
	healthPort, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &manager{logPath: filepath.Join(o.stateDir, "manager.log"), exited: make(chan struct{}),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}
	if m.logFile, err = os.Create(m.logPath); err != nil {
		return nil, err
	}
	m.cmd = exec.Command(o.managerBinary, "manager",
		"--cert-dir="+cp.certDir,
		"--webhook-port="+strconv.Itoa(cp.webhookPort),
		// Loopback only: the API server calls it on 127.0.0.1, and nobody
		// else on the network should be able to send it AdmissionReviews.
		"--webhook-bind-address=127.0.0.1",
		"--act-as=requester",
		"--preflight=true",
		// Loopback only, as the webhook: plain HTTP, for curl and a local Prometheus.
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(metricsPort),
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(healthPort),
		"--log-format=console",
	)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.managerKube)
	m.cmd.Stdout, m.cmd.Stderr = m.logFile, m.logFile
	// Its own process group: a Ctrl-C in the terminal reaches this program,
	// which then stops the manager in order, before the API server goes away.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		_ = m.logFile.Close()
		return nil, fmt.Errorf("start %s: %w", o.managerBinary, err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()

	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
	if err := m.waitReady(ctx, ready, cp); err != nil {
		return m, fmt.Errorf("manager not ready: %w\n%s", err, tail(m.logPath, 20))
	}
	return m, nil
}

func (m *manager) waitReady(ctx context.Context, readyURL string, cp *controlPlane) error {
	ca, err := os.ReadFile(filepath.Join(cp.certDir, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	deadline := time.After(90 * time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if httpOK(readyURL) && tlsOK(cp.webhookPort, pool) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.exited:
			return fmt.Errorf("it exited: %v", m.waitErr)
		case <-deadline:
			return errors.New("timed out after 90s waiting for /readyz and the webhook port")
		case <-tick.C:
		}
	}
}

func httpOK(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func tlsOK(port int, roots *x509.CertPool) bool {
	d := &net.Dialer{Timeout: time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// stop sends SIGTERM to the manager's process group, as a kubelet would,
// and SIGKILL if it has not exited after 15 seconds.
func (m *manager) stop() error {
	defer m.logFile.Close()
	pgid := m.cmd.Process.Pid
	select {
	case <-m.exited:
		return nil
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-m.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-m.exited
		return errors.New("the manager ignored SIGTERM for 15s and was killed")
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "last lines of " + path + ":\n  " + strings.Join(lines, "\n  ")
}
