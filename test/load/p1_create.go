package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
)

// p1Modes are the webhook set-ups compared, in the order of the first round;
// each later round starts one further along, so no mode always comes first.
var p1Modes = []string{modeTaskgate, modeNoop, modeNone, modeNoCache, modeOneTrip, modeBoth, modeVAP}

// parseModes reads -p1-modes: known mode names separated by '/' (mode
// names hold commas and spaces), in the order given, always with the three
// every ratio of the report needs; empty means p1Modes.
func parseModes(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return p1Modes, nil
	}
	var out []string
	for _, f := range strings.Split(s, "/") {
		m := strings.TrimSpace(f)
		switch {
		case !slices.Contains(p1Modes, m) && !slices.Contains(p1Extra, m):
			return nil, fmt.Errorf("-p1-modes: unknown mode %q; the modes are %s", m, strings.Join(append(slices.Clone(p1Modes), p1Extra...), "/"))
		case slices.Contains(out, m):
			return nil, fmt.Errorf("-p1-modes: mode %q twice", m)
		}
		out = append(out, m)
	}
	for _, m := range []string{modeTaskgate, modeNoop, modeNone} {
		if !slices.Contains(out, m) {
			return nil, fmt.Errorf("-p1-modes %q: the report divides by %q, which must be among them", s, m)
		}
	}
	return out, nil
}

// p1CustomModes are the set-ups of P1's custom-image variant: what the
// preflight (a server-side dry-run of the Pod, and binding, as the
// requester) costs a create, next to the no-op floor.
var p1CustomModes = []string{modeTaskgate, modePreflightOff, modeNoop, modePreflightCache}

// p1Extra are the modes -p1-modes may add to P1's: the preflight cache
// what-ifs.
var p1Extra = []string{modePreflightCache, modeOneTripPreCache}

// p1Result holds every create latency, by concurrency and mode, and by
// sample within it (every sample is created equally often).
type p1Result struct {
	creates, rounds int
	modes           []string
	created         map[string]int // Tasks created per mode, warm-ups included
	// Requests of the webhook servers during the run, preflight on and off.
	onReqs, offReqs map[string]int
	lat             map[int]map[string]kit.Latencies
	bySample        map[int]map[string]map[string]kit.Latencies // conc → mode → sample
}

// runP1 creates `creates` Tasks per mode and concurrency, in `rounds`
// batches per mode, the modes interleaved within each round; the Tasks of a
// batch are deleted after it (untimed) so every batch meets the same store.
// The Tasks are created by e.admin (whom the preflight impersonates), in
// namespace ns, which has the "default" ServiceAccount a real cluster's
// controller-manager would have created (the preflight's dry-run Pod needs
// it; see kit.EnsureDefaultServiceAccount).
func runP1(ctx context.Context, e *benchEnv, ns string, samples []*v1alpha1.Task, names []string, creates, rounds int, concs []int, modes []string) (*p1Result, error) {
	if err := e.cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	if err := e.cp.EnsureDefaultServiceAccount(ctx, ns); err != nil {
		return nil, err
	}
	e.onReqs.reset()
	e.offReqs.reset()
	res := &p1Result{creates: creates, rounds: rounds, modes: modes, created: map[string]int{},
		lat: map[int]map[string]kit.Latencies{}, bySample: map[int]map[string]map[string]kit.Latencies{}}
	per := creates / rounds
	for _, conc := range concs {
		res.lat[conc] = map[string]kit.Latencies{}
		res.bySample[conc] = map[string]map[string]kit.Latencies{}
		for r := range rounds {
			for k := range modes {
				mode := modes[(r+k)%len(modes)]
				if err := e.use(ctx, mode); err != nil {
					return nil, err
				}
				prefix := fmt.Sprintf("c%d-r%d-m%d", conc, r, k)
				// Warm-up, not recorded: the API server opens its
				// connections to the webhooks of the new configuration.
				if _, err := createTasks(ctx, e.admin.Client, ns, prefix+"-w", 2*conc, conc, samples); err != nil {
					return nil, fmt.Errorf("%s warm-up: %w", mode, err)
				}
				lat, err := createTasks(ctx, e.admin.Client, ns, prefix, per, conc, samples)
				if err != nil {
					return nil, fmt.Errorf("%s, concurrency %d: %w", mode, conc, err)
				}
				res.lat[conc][mode] = append(res.lat[conc][mode], lat...)
				res.created[mode] += per + 2*conc
				if res.bySample[conc][mode] == nil {
					res.bySample[conc][mode] = map[string]kit.Latencies{}
				}
				for i, d := range lat {
					s := names[i%len(samples)]
					res.bySample[conc][mode][s] = append(res.bySample[conc][mode][s], d)
				}
				if err := e.cp.Client.DeleteAllOf(ctx, &v1alpha1.Task{}, client.InNamespace(ns)); err != nil {
					return nil, fmt.Errorf("delete tasks: %w", err)
				}
			}
		}
	}
	res.onReqs, res.offReqs = e.onReqs.snapshot(), e.offReqs.snapshot()
	return res, e.use(ctx, modeNone)
}

// createTasks creates n Tasks, samples in turn, with conc workers, and
// returns each create's latency (index i is Task i). A failed create fails
// the run: the load must be admitted.
func createTasks(ctx context.Context, c client.Client, ns, prefix string, n, conc int, samples []*v1alpha1.Task) (kit.Latencies, error) {
	lat := make(kit.Latencies, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t := kit.NewTask(samples[i%len(samples)], ns, fmt.Sprintf("%s-%d", prefix, i))
				start := time.Now()
				err := c.Create(ctx, t)
				lat[i] = time.Since(start)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("create %s: %w", t.Name, err) })
					next.Store(int64(n))
				}
			}
		})
	}
	wg.Wait()
	return lat, firstErr
}
