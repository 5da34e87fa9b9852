// Package images builds, without a container engine, the images a real
// node runs here, where no registry can be reached: the Pod sandbox
// (pause), busybox (Debian's busybox-static), a kubectl image (the kubectl
// built from the Go module proxy) and taskgate's own image (the binary
// `make build` makes, as the Dockerfile's final stage holds it). They are
// go-containerregistry images, one layer each, which the node's registry
// serves under the names the samples and the chart use.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Names the images are served under: the samples' (config/samples), the
// chart's default repository with the Makefile's IMG tag, and containerd's
// sandbox_image.
const (
	Busybox  = "docker.io/library/busybox:latest"
	Kubectl  = "docker.io/bitnami/kubectl:1.27"
	Taskgate = "ghcr.io/astronetes/taskgate:dev"
	Pause    = "registry.k8s.io/pause:3.10"
)

// file is one entry of a layer: a regular file (data), a directory
// (dir) or a symbolic link (link).
type file struct {
	name string
	mode int64
	data []byte
	link string
	dir  bool
}

// epoch is every entry's modification time, so a layer's digest depends
// on its content only.
var epoch = time.Unix(0, 0)

// layer makes one uncompressed tar layer of files.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// image is files as one layer with cfg's entrypoint, user and environment,
// for this machine's platform.
func image(files []file, cfg v1.Config) (v1.Image, error) {
	l, err := layer(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", runtime.GOARCH, v1.Time{Time: epoch}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// binary is the executable at src as name in a layer.
func binary(src, name string) (file, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return file{}, fmt.Errorf("read %s: %w", src, err)
	}
	return file{name: name, mode: 0o755, data: data}, nil
}

// basics are the directories every image here has, and an /etc/passwd
// naming root and nobody.
func basics() []file {
	return []file{
		{name: "bin", mode: 0o755, dir: true}, {name: "etc", mode: 0o755, dir: true},
		{name: "tmp", mode: 0o1777, dir: true}, {name: "usr", mode: 0o755, dir: true},
		{name: "usr/bin", mode: 0o755, dir: true}, {name: "usr/sbin", mode: 0o755, dir: true},
		{name: "sbin", mode: 0o755, dir: true}, {name: "usr/local", mode: 0o755, dir: true},
		{name: "usr/local/bin", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
}

var defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// busyboxFiles is the static busybox at src as /bin/busybox, and a link
// for each of its applets (`busybox --list-full`), as the busybox image has.
func busyboxFiles(ctx context.Context, src string) ([]file, error) {
	bb, err := binary(src, "bin/busybox")
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, src, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", src, err)
	}
	files := []file{bb}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" || !strings.Contains(applet, "/") {
			continue
		}
		// A relative link, as an image's links are: "bin/sh" -> "../bin/busybox".
		up := strings.Repeat("../", strings.Count(applet, "/"))
		files = append(files, file{name: applet, mode: 0o777, link: up + "bin/busybox"})
	}
	return files, nil
}

// BusyboxImage is busybox from the static binary at src (Debian's
// busybox-static installs /bin/busybox), running as root like the
// original; a Task in a restricted namespace says runAsUser itself.
func BusyboxImage(ctx context.Context, src string) (v1.Image, error) {
	files, err := busyboxFiles(ctx, src)
	if err != nil {
		return nil, err
	}
	return image(append(basics(), files...), v1.Config{Cmd: []string{"sh"}, Env: []string{defaultPath}})
}

// KubectlImage is kubectl (the binary at kubectl) with busybox's shell
// (bitnami/kubectl has a shell too), running as 1001 with HOME in /tmp as
// bitnami's image does.
func KubectlImage(ctx context.Context, kubectl, busybox string) (v1.Image, error) {
	files, err := busyboxFiles(ctx, busybox)
	if err != nil {
		return nil, err
	}
	k, err := binary(kubectl, "usr/local/bin/kubectl")
	if err != nil {
		return nil, err
	}
	files = append(append(basics(), files...), k)
	return image(files, v1.Config{Entrypoint: []string{"kubectl"}, User: "1001", Env: []string{defaultPath, "HOME=/tmp"}})
}

// TaskgateImage is the Dockerfile's final stage without its base: the
// static binary at bin as /taskgate, user 65532, entrypoint and command as
// the Dockerfile says (distroless's CA certificates are not needed: the
// manager talks only to the API server, with its CA).
func TaskgateImage(bin string) (v1.Image, error) {
	tg, err := binary(bin, "taskgate")
	if err != nil {
		return nil, err
	}
	files := []file{{name: "etc", mode: 0o755, dir: true}, {name: "tmp", mode: 0o1777, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		tg}
	return image(files, v1.Config{Entrypoint: []string{"/taskgate"}, Cmd: []string{"manager"}, User: "65532:65532", Env: []string{defaultPath}})
}

// PauseImage is the sandbox image: the static program at bin (BuildPause)
// as /pause.
func PauseImage(bin string) (v1.Image, error) {
	p, err := binary(bin, "pause")
	if err != nil {
		return nil, err
	}
	return image([]file{p}, v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"})
}

// BuildPause builds internal/node/pause of the module at root, static, into
// dir, and returns the binary's path.
func BuildPause(ctx context.Context, root, dir string) (string, error) {
	bin := path.Join(dir, "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./internal/node/pause")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./internal/node/pause: %w\n%s", err, out)
	}
	return bin, nil
}
