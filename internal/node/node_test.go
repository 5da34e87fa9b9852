package node

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astronetes/taskgate/internal/images"
)

// TestContainerdRunsAnImageFromTheRegistry is the node's lower half on its
// own, without Kubernetes: the busybox image built here, served by the
// node's registry, pulled by containerd through its mirror configuration
// as docker.io/library/busybox:latest, and run by runc; then everything is
// stopped and the machine is as it was. It needs root and containerd.
func TestContainerdRunsAnImageFromTheRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (containerd)")
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "/bin/busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("no %s: apt-get install -y %s", bin, strings.Join(Packages, " "))
		}
	}
	if len(namedProcesses("containerd")) > 0 {
		t.Skip("another containerd runs here")
	}
	ctx := context.Background()
	dir := filepath.Join(os.TempDir(), "taskgate-node-unit")
	if err := removeLeftovers(ctx, dir, false); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(dir)
	before := TakeSnapshot(dir)
	reg, err := startRegistry()
	if err != nil {
		t.Fatal(err)
	}
	img, err := images.BusyboxImage(ctx, "/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.push(ctx, images.Busybox, img); err != nil {
		t.Fatal(err)
	}
	cniConf := filepath.Join(dir, "cni")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := startContainerd(ctx, dir, "/usr/lib/cni", cniConf, reg.addr)
	t.Cleanup(func() {
		if c.proc != nil {
			_ = c.removeContainers(ctx)
			_ = c.proc.stop(10 * time.Second)
		}
		_ = reg.stop()
		if err := removeLeftovers(ctx, dir, false); err != nil {
			t.Error(err)
		}
		_ = os.RemoveAll(dir)
		if left := Diff(before, TakeSnapshot(dir)); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.ctr(ctx, "images", "pull", "--hosts-dir", filepath.Join(dir, "containerd", "certs.d"), images.Busybox); err != nil {
		t.Fatalf("pull through the mirror: %v\n%s", err, out)
	}
	out, err := c.ctr(ctx, "run", "--rm", images.Busybox, "unit-hello", "echo", "hello from runc")
	if err != nil {
		t.Fatalf("ctr run: %v\n%s\n%s", err, out, tail(filepath.Join(dir, "containerd.log"), 20))
	}
	if strings.TrimSpace(out) != "hello from runc" {
		t.Errorf("the container printed %q", out)
	}
}
