// Package kit is what the load driver (test/load) and the reliability drills
// (test/drills) share beyond test/testutil, the harness every integration
// package uses: the webhook configurations pointed at a local TLS server,
// certificates that can be rotated, the chart's requester-mode manager,
// Task samples and percentiles.
//
// Everything listens on and talks to 127.0.0.1 only.
package kit

import (
	"path/filepath"

	"github.com/astronetes/taskgate/test/testutil"
)

// ControlPlane is one kube-apiserver and etcd with taskgate's CRDs
// (testutil.ControlPlane) and the repository it came from.
type ControlPlane struct {
	*testutil.ControlPlane
	// Root is the repository root (config/, cmd/ are under it).
	Root string
}

// StartControlPlane starts etcd and kube-apiserver (testutil.AssetsDir)
// and installs the CRDs of root/config/crd. It is stopped on a signal or
// near the test timeout too (testutil.StartControlPlane).
func StartControlPlane(root string) (*ControlPlane, error) {
	cp, err := testutil.StartControlPlane(testutil.Options{CRDs: []string{filepath.Join(root, "config", "crd")}})
	if err != nil {
		return nil, err
	}
	return &ControlPlane{ControlPlane: cp, Root: root}, nil
}
