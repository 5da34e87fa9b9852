package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// profileP1 puts each mode under P1's load (the samples in turn, conc
// workers, namespace p1-tasks) for d, untimed, and meanwhile takes two CPU
// profiles: the API server's (its /debug/pprof/profile, as envtest's
// system:masters admin) and, with driver, this process's, which serves
// taskgate's webhooks in-process (webhook.SetupWithManager on
// controller-runtime's server), so that
//
//	go tool pprof -top -focus 'taskgate/webhook' DIR/driver-taskgate.pprof
//
// shows the webhooks' share. The files are DIR/apiserver-<mode>.pprof and
// DIR/driver-<mode>.pprof.
func profileP1(ctx context.Context, e *benchEnv, dir string, samples []*v1alpha1.Task, modes []string, conc int, d time.Duration, driver bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(e.cp.Config)
	if err != nil {
		return err
	}
	hc.Timeout = d + time.Minute
	for i, mode := range modes {
		if err := e.use(ctx, mode); err != nil {
			return err
		}
		name := profileName(mode)
		got := make(chan error, 1)
		go func() {
			got <- fetchProfile(ctx, hc, e.cp.Config.Host, d, filepath.Join(dir, "apiserver-"+name+".pprof"))
		}()
		var stopDriver func() error
		if driver {
			if stopDriver, err = startCPUProfile(filepath.Join(dir, "driver-"+name+".pprof")); err != nil {
				return errors.Join(err, <-got)
			}
		}
		n, loadErr := loadFor(ctx, e, samples, fmt.Sprintf("prof-m%d", i), conc, d)
		if stopDriver != nil {
			loadErr = errors.Join(loadErr, stopDriver())
		}
		if err := errors.Join(loadErr, <-got); err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		step(fmt.Sprintf("P1 profile %s: %d creates in %s", mode, n, d))
	}
	return e.use(ctx, modeNone)
}

// loadFor creates Tasks in namespace p1-tasks (P1's Task row's), in batches, for at least d, and
// deletes them after each batch as runP1 does.
func loadFor(ctx context.Context, e *benchEnv, samples []*v1alpha1.Task, prefix string, conc int, d time.Duration) (int, error) {
	n := 0
	for b, end := 0, time.Now().Add(d); time.Now().Before(end); b++ {
		batch := 20 * conc
		if _, err := createTasks(ctx, e.admin.Client, p1TaskNamespace, fmt.Sprintf("%s-b%d", prefix, b), batch, conc, samples, nil); err != nil {
			return n, err
		}
		n += batch
		if err := e.cp.Client.DeleteAllOf(ctx, &v1alpha1.Task{}, client.InNamespace(p1TaskNamespace)); err != nil {
			return n, fmt.Errorf("delete tasks: %w", err)
		}
	}
	return n, nil
}

// fetchProfile writes the API server's CPU profile of the next d to file.
func fetchProfile(ctx context.Context, hc *http.Client, host string, d time.Duration, file string) error {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(host, "/"), int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("API server profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("API server profile: %s: %s", resp.Status, body)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// startCPUProfile profiles this process into file until the returned stop.
func startCPUProfile(file string) (func() error, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error { pprof.StopCPUProfile(); return f.Close() }, nil
}

// profileName is mode as a file name: "single-call, cache off" is
// "single-call-cache-off", "VAP+MAP" is "vap+map".
func profileName(mode string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '+', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, strings.ReplaceAll(mode, ", ", "-")), "-")
}
