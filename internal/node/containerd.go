package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// SandboxImage is the Pod sandbox's image (pause), built here (see
// images.go) and served by the node's registry.
const SandboxImage = "registry.k8s.io/pause:3.10"

// mirroredHosts are the registry hosts whose images the node's registry
// serves instead, so a Pod naming docker.io/..., ghcr.io/... or
// registry.k8s.io/... is pulled from this machine and nothing leaves it.
var mirroredHosts = map[string]string{"docker.io": "registry-1.docker.io", "ghcr.io": "ghcr.io", "registry.k8s.io": "registry.k8s.io"}

// containerdConfig is containerd 1.6's configuration, everything under the
// node's state dir. restrict_oom_score_adj: this machine's processes may
// lack CAP_SYS_RESOURCE, and without it runc fails every sandbox with
// "can't get final child's PID from pipe". cgroupfs, as the kubelet.
var containerdConfig = template.Must(template.New("containerd").Parse(`version = 2
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{{.Socket}}"

[ttrpc]
  address = "{{.Socket}}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Dir}}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.SandboxImage}}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.CNIBinDir}}"
    conf_dir = "{{.CNIConfDir}}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{{.Dir}}/certs.d"
`))

type containerd struct {
	dir    string
	socket string
	proc   *proc
}

func (c *containerd) ctr(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "ctr", append([]string{"--address", c.socket, "--namespace", "k8s.io"}, args...)...)
}

// startContainerd writes the configuration (the registry at registry
// mirrors every host in mirroredHosts) and starts containerd.
func startContainerd(ctx context.Context, dir, cniBinDir, cniConfDir, registry string) (*containerd, error) {
	c := &containerd{dir: filepath.Join(dir, "containerd")}
	c.socket = filepath.Join(c.dir, "containerd.sock")
	for host, upstream := range mirroredHosts {
		hd := filepath.Join(c.dir, "certs.d", host)
		if err := os.MkdirAll(hd, 0o755); err != nil {
			return c, err
		}
		// server is the local registry too: no request leaves the machine,
		// as in an air-gapped cluster; upstream is said for the reader.
		hosts := fmt.Sprintf("# %s (upstream %s) is served by the node's registry.\nserver = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
			host, upstream, registry, registry)
		if err := os.WriteFile(filepath.Join(hd, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			return c, err
		}
	}
	var b strings.Builder
	if err := containerdConfig.Execute(&b, map[string]string{
		"Dir": c.dir, "Socket": c.socket, "SandboxImage": SandboxImage, "CNIBinDir": cniBinDir, "CNIConfDir": cniConfDir,
	}); err != nil {
		return c, err
	}
	conf := filepath.Join(c.dir, "config.toml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return c, err
	}
	p, err := startProc("containerd", filepath.Join(dir, "containerd.log"), nil, "containerd", "--config", conf)
	if err != nil {
		return c, err
	}
	c.proc = p
	return c, p.waitReady(ctx, 60*time.Second, func() error {
		_, err := c.ctr(ctx, "version")
		return err
	})
}

// removeContainers kills and deletes every container containerd still
// has (after the kubelet stopped: normally none), so no shim outlives it.
func (c *containerd) removeContainers(ctx context.Context) error {
	out, err := c.ctr(ctx, "tasks", "ls", "-q")
	if err != nil {
		return err
	}
	for _, id := range strings.Fields(out) {
		_, _ = c.ctr(ctx, "tasks", "kill", "-s", "SIGKILL", id)
		_, _ = c.ctr(ctx, "tasks", "delete", "-f", id)
	}
	out, err = c.ctr(ctx, "containers", "ls", "-q")
	if err != nil {
		return err
	}
	for _, id := range strings.Fields(out) {
		if _, err := c.ctr(ctx, "containers", "delete", id); err != nil {
			return err
		}
	}
	return nil
}
