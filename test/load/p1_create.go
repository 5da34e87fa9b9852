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

// taskModes are the modes of P1's Task row: a Task's admission makes no
// access review and no preflight, so the options about those change
// nothing for it.
var taskModes = []string{modeTaskgate, modeNoop, modeNone, modeOneTrip, modeVAP}

// forTasks keeps the modes of P1's Task row, in the order given.
func forTasks(modes []string) []string {
	return slices.DeleteFunc(slices.Clone(modes), func(m string) bool { return !slices.Contains(taskModes, m) })
}

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

// The namespaces of P1's rows.
const (
	p1TaskNamespace   = "p1-tasks"
	p1RunNamespace    = "p1-runs"
	p1CustomNamespace = "p1-custom-image"
)

// What P1 creates: a Task (a runbook: checked and defaulted, nothing
// else), or a TaskRun of one (resolved, its snapshot recorded, its creator's
// rights checked, custom-image preflighted).
const (
	kindTask    = "Task"
	kindTaskRun = "TaskRun"
)

// p1Result holds every create latency, by concurrency and mode, and by
// sample within it (every sample is created equally often).
type p1Result struct {
	kind            string // kindTask or kindTaskRun
	creates, rounds int
	modes           []string
	created         map[string]int // objects created per mode, warm-ups included
	// Requests of the webhook servers during the run, preflight on and off.
	onReqs, offReqs map[string]int
	lat             map[int]map[string]kit.Latencies
	bySample        map[int]map[string]map[string]kit.Latencies // conc → mode → sample
}

// p1Run is one P1 measurement: what it creates, where, and in which modes.
type p1Run struct {
	kind, ns        string
	samples         []*v1alpha1.Task
	names           []string // of the samples; the Tasks of a TaskRun run are named so
	creates, rounds int
	concs           []int
	modes           []string
}

// runP1 creates `creates` objects of kind per mode and concurrency, in
// `rounds` batches per mode, the modes interleaved within each round; the
// objects of a batch are deleted after it (untimed) so every batch meets
// the same store. They are created by e.admin (whom the preflight
// impersonates), in namespace ns, which has the "default" ServiceAccount a
// real cluster's controller-manager would have created (the preflight's
// dry-run Pod needs it; see kit.EnsureDefaultServiceAccount). For TaskRuns,
// ns first gets one Task per sample, named after it and admitted by
// taskgate's webhooks, and each TaskRun names one of them in turn; nothing
// runs them (no controller).
func runP1(ctx context.Context, e *benchEnv, p p1Run) (*p1Result, error) {
	ns := p.ns
	if err := e.cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	if err := e.cp.EnsureDefaultServiceAccount(ctx, ns); err != nil {
		return nil, err
	}
	create, kind := createTasks, client.Object(&v1alpha1.Task{})
	if p.kind == kindTaskRun {
		if err := e.runbooks(ctx, ns, p.samples, p.names); err != nil {
			return nil, err
		}
		create, kind = createRuns, &v1alpha1.TaskRun{}
	}
	e.onReqs.reset()
	e.offReqs.reset()
	res := &p1Result{kind: p.kind, creates: p.creates, rounds: p.rounds, modes: p.modes, created: map[string]int{},
		lat: map[int]map[string]kit.Latencies{}, bySample: map[int]map[string]map[string]kit.Latencies{}}
	per := p.creates / p.rounds
	for _, conc := range p.concs {
		res.lat[conc] = map[string]kit.Latencies{}
		res.bySample[conc] = map[string]map[string]kit.Latencies{}
		for r := range p.rounds {
			for k := range p.modes {
				mode := p.modes[(r+k)%len(p.modes)]
				if err := e.use(ctx, mode); err != nil {
					return nil, err
				}
				prefix := fmt.Sprintf("c%d-r%d-m%d", conc, r, k)
				// Warm-up, not recorded: the API server opens its
				// connections to the webhooks of the new configuration.
				if _, err := create(ctx, e.admin.Client, ns, prefix+"-w", 2*conc, conc, p.samples, p.names); err != nil {
					return nil, fmt.Errorf("%s warm-up: %w", mode, err)
				}
				lat, err := create(ctx, e.admin.Client, ns, prefix, per, conc, p.samples, p.names)
				if err != nil {
					return nil, fmt.Errorf("%s, concurrency %d: %w", mode, conc, err)
				}
				res.lat[conc][mode] = append(res.lat[conc][mode], lat...)
				res.created[mode] += per + 2*conc
				if res.bySample[conc][mode] == nil {
					res.bySample[conc][mode] = map[string]kit.Latencies{}
				}
				for i, d := range lat {
					s := p.names[i%len(p.samples)]
					res.bySample[conc][mode][s] = append(res.bySample[conc][mode][s], d)
				}
				if err := e.cp.Client.DeleteAllOf(ctx, kind, client.InNamespace(ns)); err != nil {
					return nil, fmt.Errorf("delete the %ss: %w", p.kind, err)
				}
			}
		}
	}
	res.onReqs, res.offReqs = e.onReqs.snapshot(), e.offReqs.snapshot()
	return res, e.use(ctx, modeNone)
}

// runbooks creates in ns one Task per sample, named names[i], through
// taskgate's webhooks (so each is stored as taskgate admits it), unless it
// is there.
func (e *benchEnv) runbooks(ctx context.Context, ns string, samples []*v1alpha1.Task, names []string) error {
	if err := e.use(ctx, modeTaskgate); err != nil {
		return err
	}
	for i, s := range samples {
		if err := e.admin.Client.Create(ctx, kit.NewTask(s, ns, names[i])); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("task %s: %w", names[i], err)
		}
	}
	return nil
}

// createTasks creates n Tasks, samples in turn, with conc workers, and
// returns each create's latency (index i is Task i). A failed create fails
// the run: the load must be admitted.
func createTasks(ctx context.Context, c client.Client, ns, prefix string, n, conc int, samples []*v1alpha1.Task, _ []string) (kit.Latencies, error) {
	return timeCreates(ctx, c, n, conc, func(i int) client.Object {
		return kit.NewTask(samples[i%len(samples)], ns, fmt.Sprintf("%s-%d", prefix, i))
	})
}

// createRuns creates n TaskRuns of the Tasks names, in turn, as
// createTasks creates Tasks.
func createRuns(ctx context.Context, c client.Client, ns, prefix string, n, conc int, _ []*v1alpha1.Task, names []string) (kit.Latencies, error) {
	return timeCreates(ctx, c, n, conc, func(i int) client.Object {
		return kit.NewTaskRun(ns, fmt.Sprintf("%s-%d", prefix, i), names[i%len(names)])
	})
}

// timeCreates creates object(i) for i < n with conc workers and returns
// each create's latency (index i is object i). A failed create fails the
// run: the load must be admitted.
func timeCreates(ctx context.Context, c client.Client, n, conc int, object func(i int) client.Object) (kit.Latencies, error) {
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
				o := object(i)
				start := time.Now()
				err := c.Create(ctx, o)
				lat[i] = time.Since(start)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("create %s: %w", o.GetName(), err) })
					next.Store(int64(n))
				}
			}
		})
	}
	wg.Wait()
	return lat, firstErr
}
