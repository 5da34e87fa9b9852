package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/astronetes/taskgate/test/testutil"
)

// manager is the `taskgate manager` subprocess.
type manager struct {
	*process
	// metricsURL is the Prometheus endpoint, on loopback only.
	metricsURL string
}

// startManager runs the real binary as the chart would, but with a local
// kubeconfig and the envtest serving certificate, and waits until it is ready
// and its webhook server answers TLS with that certificate.
func startManager(ctx context.Context, o options, cp *controlPlane) (*manager, error) {
	healthPort, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(cp.certDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	readyURL := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
	ready := func() bool { return httpOK(readyURL) && tlsOK(cp.webhookPort, pool) }

	p, err := startProcess(ctx, "the manager", o.managerBinary, filepath.Join(o.stateDir, "manager.log"),
		[]string{"KUBECONFIG=" + cp.managerKube}, ready,
		"manager",
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
	if p == nil {
		return nil, err
	}
	m := &manager{process: p, metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}
	if err != nil {
		return m, fmt.Errorf("manager not ready: %w", err)
	}
	return m, nil
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

// stop stops the manager, with 15 seconds for a graceful shutdown.
func (m *manager) stop() error { return m.process.stop(15 * time.Second) }

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
