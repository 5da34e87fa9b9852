// Package kit is what the load driver (test/load) and the reliability drills
// (test/drills) share: a real kube-apiserver and etcd (envtest) with the CRDs,
// the webhook configurations pointed at a local TLS server, certificates that
// can be rotated, the taskgate binary as a subprocess, and percentiles.
//
// Everything listens on and talks to 127.0.0.1 only.
package kit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// EnvtestVersion is the Kubernetes version `make envtest` builds.
const EnvtestVersion = testutil.EnvtestVersion

// Scheme knows the client-go types and the taskgate API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// ControlPlane is one kube-apiserver and etcd with taskgate's CRDs.
type ControlPlane struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	// Kubeconfig is a file for subprocesses (a system:masters user).
	Kubeconfig string
	// Root is the repository root (config/, cmd/ are under it).
	Root string
	dir  string
}

// StartControlPlane starts etcd and kube-apiserver from KUBEBUILDER_ASSETS
// (default ~/.cache/taskgate/envtest-v1.37.2) and installs the CRDs of
// root/config/crd. The client has no client-side rate limit: the load is
// bounded by the callers.
func StartControlPlane(root string) (*ControlPlane, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		home, _ := os.UserHomeDir()
		_ = os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(home, ".cache", "taskgate", "envtest-"+EnvtestVersion))
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %s: run `make envtest` first", os.Getenv("KUBEBUILDER_ASSETS"))
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStopTimeout:  30 * time.Second,
		ControlPlaneStartTimeout: 90 * time.Second,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	cp := &ControlPlane{Env: env, Root: root}
	if err := cp.init(cfg); err != nil {
		return nil, errors.Join(err, cp.Stop())
	}
	return cp, nil
}

func (cp *ControlPlane) init(cfg *rest.Config) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1e6, 1e6
	cp.Config = cfg
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	cp.Client = c
	if cp.dir, err = os.MkdirTemp("", "taskgate-kit-"); err != nil {
		return err
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	return os.WriteFile(cp.Kubeconfig, cp.Env.KubeConfig, 0o600)
}

// Stop stops the control plane and removes its files.
func (cp *ControlPlane) Stop() error {
	if cp.dir != "" {
		_ = os.RemoveAll(cp.dir)
	}
	if err := cp.Env.Stop(); err != nil {
		return fmt.Errorf("stop control plane: %w", err)
	}
	return nil
}
