package testutil

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InstallFiles writes files into dir the way the kubelet updates a mounted
// Secret (its AtomicWriter): all of them go into a new hidden directory, one
// atomic rename of the ..data symlink switches them together (each file is
// a symlink through ..data), and the previous directory is removed. A
// reader never sees files from two versions, such as a certificate and a
// key that do not match.
func InstallFiles(dir string, files map[string][]byte) error {
	gen, err := os.MkdirTemp(dir, "..data-")
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(gen, name), files[name], 0o600); err != nil {
			return err
		}
	}
	data, tmp := filepath.Join(dir, "..data"), filepath.Join(dir, "..data_tmp")
	old, _ := os.Readlink(data)
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, data); err != nil {
		return err
	}
	for _, name := range names {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// WatchSecret watches the one Secret key names, until ctx ends or the
// watch is stopped.
func WatchSecret(ctx context.Context, t testing.TB, cfg *rest.Config, key client.ObjectKey) watch.Interface {
	t.Helper()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &corev1.SecretList{}, client.InNamespace(key.Namespace), client.MatchingFields{"metadata.name": key.Name})
	if err != nil {
		t.Fatalf("watch secret %s: %v", key, err)
	}
	return w
}

// MountSecret plays the kubelet for a Secret volume at dir: delay after
// each change of the Secret's data it installs every key as a file
// (InstallFiles), until ctx ends. The kubelet projects a change on its next
// sync, never at once; delay 0 is the quickest a volume could follow.
func MountSecret(ctx context.Context, t testing.TB, cfg *rest.Config, key client.ObjectKey, dir string, delay time.Duration) {
	t.Helper()
	w := WatchSecret(ctx, t, cfg, key)
	go func() {
		defer w.Stop()
		var last map[string][]byte
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Secret)
			if !ok || len(s.Data) == 0 || equality.Semantic.DeepEqual(s.Data, last) {
				continue
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			if err := InstallFiles(dir, s.Data); err != nil && ctx.Err() == nil {
				t.Errorf("kubelet: install Secret %s into %s: %v", key, dir, err)
				continue
			}
			last = s.Data
		}
	}()
}
