package node

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// imageRegistry is the node's registry: go-containerregistry's, in memory,
// on loopback, served by the program that owns the node. containerd uses
// it as the mirror, and the only server, of every host in mirroredHosts:
// an image named docker.io/library/busybox:latest is served as
// library/busybox:latest. A Pod's imagePullPolicy Always (a :latest tag)
// works as in a connected cluster; nothing is pulled from outside.
type imageRegistry struct {
	addr   string
	server *http.Server
}

func startRegistry() (*imageRegistry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r := &imageRegistry{addr: l.Addr().String()}
	r.server = &http.Server{
		Handler:           registry.New(registry.Logger(log.New(discard{}, "", 0))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = r.server.Serve(l) }()
	return r, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// push serves img under ref, a name of a mirrored host.
func (r *imageRegistry) push(ctx context.Context, ref string, img v1.Image) error {
	local, err := r.localName(ref)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(local, name.Insecure)
	if err != nil {
		return fmt.Errorf("image name %s: %w", local, err)
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// localName is ref's repository and tag on this registry.
func (r *imageRegistry) localName(ref string) (string, error) {
	t, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("image name %s (host, repository and tag): %w", ref, err)
	}
	host := t.RegistryStr()
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	if _, ok := mirroredHosts[host]; !ok {
		return "", fmt.Errorf("image %s: host %s is not mirrored (%v)", ref, host, mirroredHosts)
	}
	return r.addr + "/" + strings.TrimPrefix(t.RepositoryStr(), "/") + ":" + t.TagStr(), nil
}

func (r *imageRegistry) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.server.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop the registry: %w", err)
	}
	return nil
}
