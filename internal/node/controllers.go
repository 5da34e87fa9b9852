package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

// Identities of the components: the users kube-apiserver's bootstrap RBAC
// binds (system:kube-controller-manager, which with
// --use-service-account-credentials gives each controller a ServiceAccount
// of its own in kube-system, as kubeadm runs it; system:kube-scheduler;
// system:kube-proxy), and the kubelet as the Node authorizer knows it.
const (
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
	kubeProxyUser         = "system:kube-proxy"
	nodesGroup            = "system:nodes"
)

// ControllerArgs are kube-controller-manager's and kube-scheduler's
// common flags: their kubeconfig, no leader election, a secure port on
// loopback that serves /healthz (no --authentication-kubeconfig: envtest's
// API server has no request-header CA to delegate to).
func ControllerArgs(kubeconfig string, port int, certDir string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
	}
}

// startController starts kube-controller-manager or kube-scheduler from
// the assets and waits for its /healthz.
func startController(ctx context.Context, dir, assets, name, kubeconfig string, extra ...string) (*proc, error) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	args := append(ControllerArgs(kubeconfig, port, filepath.Join(dir, name)), extra...)
	p, err := startProc(name, filepath.Join(dir, name+".log"), nil, filepath.Join(assets, name), args...)
	if err != nil {
		return nil, err
	}
	return p, p.waitReady(ctx, 90*time.Second, httpsHealthz(port))
}

// httpsHealthz checks a component's /healthz on its self-signed
// certificate: read only to learn that it is up.
func httpsHealthz(port int) func() error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // a liveness probe on loopback
	}}
	return httpOKWith(hc, fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
}
