package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/internal/node"
)

// controlPlane is a running etcd + kube-apiserver with taskgate's CRDs and
// webhook configurations installed.
type controlPlane struct {
	env         *envtest.Environment
	client      client.Client
	stateDir    string
	kubeconfig  string // admin kubeconfig for the user and kubectl
	managerKube string // kubeconfig the manager runs with
	certDir     string // webhook serving certificate (tls.crt, tls.key, ca.crt)
	webhookPort int
	lock        *os.File
	// webhookNames are the configurations installed, as loadWebhooks named them.
	webhookNames []string
}

// startControlPlane returns a controlPlane whose stop is safe to call even
// when starting failed half-way, so nothing it started outlives it.
// With rn, kube-apiserver is configured for that real node (see
// node.ConfigureAPIServer).
func startControlPlane(o options, rn *node.Node) (*controlPlane, error) {
	cp := &controlPlane{stateDir: o.stateDir}
	if err := cp.prepareStateDir(); err != nil {
		return cp, err
	}
	mutating, validating, err := loadWebhooks(o.webhookConfig)
	if err != nil {
		return cp, err
	}
	for _, w := range mutating {
		cp.webhookNames = append(cp.webhookNames, "MutatingWebhookConfiguration "+w.Name)
	}
	for _, w := range validating {
		cp.webhookNames = append(cp.webhookNames, "ValidatingWebhookConfiguration "+w.Name)
	}
	cp.env = &envtest.Environment{
		BinaryAssetsDirectory: o.assetsDir,
		// A busy machine can take longer than envtest's default 20s to start kube-apiserver.
		ControlPlaneStartTimeout: 90 * time.Second,
		CRDDirectoryPaths:        []string{o.crdDir},
		ErrorIfCRDPathMissing:    true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			// envtest makes a CA and a serving certificate for this host and
			// writes the caBundle and https://127.0.0.1:<port>/<path> into
			// the webhook configurations of config/webhook (see
			// loadWebhooks) before creating them.
			LocalServingHost:   "127.0.0.1",
			MutatingWebhooks:   mutating,
			ValidatingWebhooks: validating,
		},
	}
	// Data and certificates under the state dir, so `pgrep -f <state dir>`
	// finds exactly this run's etcd and kube-apiserver.
	cp.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(o.stateDir, "etcd")}
	cp.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: filepath.Join(o.stateDir, "apiserver")}
	for _, d := range []string{cp.env.ControlPlane.Etcd.DataDir, cp.env.ControlPlane.APIServer.CertDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return cp, err
		}
	}
	if rn != nil {
		if err := rn.ConfigureAPIServer(cp.env); err != nil {
			return cp, err
		}
	}

	cfg, err := cp.env.Start()
	if err != nil {
		return cp, fmt.Errorf("start control plane: %w", err)
	}
	cp.webhookPort = cp.env.WebhookInstallOptions.LocalServingPort
	if err := cp.copyServingCert(); err != nil {
		return cp, err
	}

	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		return cp, err
	}
	if cp.client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return cp, fmt.Errorf("client: %w", err)
	}
	cp.kubeconfig = filepath.Join(o.stateDir, "kubeconfig")
	if err := cp.writeKubeconfig(cp.kubeconfig, adminUser, adminsGroup); err != nil {
		return cp, err
	}
	cp.managerKube = filepath.Join(o.stateDir, "manager.kubeconfig")
	return cp, cp.writeKubeconfig(cp.managerKube, managerUser)
}

// copyServingCert puts envtest's webhook serving certificate, and the CA
// the webhook configurations trust, into the state dir for the manager.
func (cp *controlPlane) copyServingCert() error {
	cp.certDir = filepath.Join(cp.stateDir, "certs")
	if err := os.MkdirAll(cp.certDir, 0o700); err != nil {
		return err
	}
	src := cp.env.WebhookInstallOptions.LocalServingCertDir
	for _, name := range []string{"tls.crt", "tls.key"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return fmt.Errorf("webhook serving certificate: %w", err)
		}
		if err := os.WriteFile(filepath.Join(cp.certDir, name), data, 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(cp.certDir, "ca.crt"), cp.env.WebhookInstallOptions.LocalServingCAData, 0o600)
}

// writeKubeconfig provisions a user with a client certificate (the groups
// are its organizations). Never system:masters: see adminUser and
// managerUser; grantRBAC gives them their rights.
func (cp *controlPlane) writeKubeconfig(path, user string, groups ...string) error {
	u, err := cp.env.AddUser(envtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		return fmt.Errorf("add user %s: %w", user, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig for %s: %w", user, err)
	}
	return os.WriteFile(path, data, 0o600)
}

// prepareStateDir takes the state dir's lock (one run per state dir) and
// clears what a previous run left, so every run starts from a fresh cluster.
func (cp *controlPlane) prepareStateDir() error {
	if err := os.MkdirAll(cp.stateDir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(cp.stateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return fmt.Errorf("another taskgate-local is using %s (stop it with Ctrl-C first)", cp.stateDir)
	}
	cp.lock = lock
	_ = lock.Truncate(0)
	_, _ = lock.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return cp.removeGenerated()
}

// removeGenerated deletes only what this program creates in the state dir.
func (cp *controlPlane) removeGenerated() error {
	var errs []error
	for _, name := range []string{"etcd", "apiserver", "kubeconfig", "manager.kubeconfig", "wrong-tasks.yaml", "kube-cache", "certs", "helm",
		"cluster-ca.crt", "kwok-stages.yaml", kcmUser + ".kubeconfig", schedulerUser + ".kubeconfig", kwokUser + ".kubeconfig",
		"kube-controller-manager", "kube-scheduler"} {
		errs = append(errs, os.RemoveAll(filepath.Join(cp.stateDir, name)))
	}
	return errors.Join(errs...)
}

// stop stops kube-apiserver and etcd (envtest also removes the serving
// certificates) and deletes the cluster's data: the kubeconfig would point
// at nothing.
func (cp *controlPlane) stop() error {
	var errs []error
	if cp.env != nil {
		errs = append(errs, cp.env.Stop())
	}
	if cp.lock != nil {
		errs = append(errs, cp.removeGenerated())
		errs = append(errs, cp.lock.Close())
	}
	return errors.Join(errs...)
}
