package images

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// entries reads the image's one filesystem: name -> link target ("" for
// a regular file or a directory) and mode.
func entries(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

func TestBusyboxHasAShellAndItsApplets(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox: apt-get install busybox-static")
	}
	img, err := BusyboxImage(context.Background(), "/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	files := entries(t, img)
	for name, target := range map[string]string{"bin/sh": "../bin/busybox", "bin/sleep": "../bin/busybox", "usr/bin/env": "../../bin/busybox"} {
		h, ok := files[name]
		if !ok || h.Typeflag != tar.TypeSymlink || h.Linkname != target {
			t.Errorf("%s: %+v, want a link to %s", name, h, target)
		}
		// The link resolves to the binary from where it is.
		if got := filepath.Clean(filepath.Join(filepath.Dir("/"+name), target)); got != "/bin/busybox" {
			t.Errorf("%s -> %s resolves to %s", name, target, got)
		}
	}
	if h := files["bin/busybox"]; h == nil || h.Mode&0o111 == 0 {
		t.Errorf("bin/busybox is not an executable: %+v", h)
	}
}

func TestTaskgateImageIsTheDockerfilesFinalStage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "taskgate")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := TaskgateImage(bin)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	// As the Dockerfile says: USER 65532:65532, ENTRYPOINT ["/taskgate"], CMD ["manager"].
	if cf.Config.User != "65532:65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/taskgate" ||
		len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "manager" || cf.OS != "linux" {
		t.Errorf("config: %+v (os %s)", cf.Config, cf.OS)
	}
	if h := entries(t, img)["taskgate"]; h == nil || h.Mode != 0o755 {
		t.Errorf("/taskgate: %+v", h)
	}
}
