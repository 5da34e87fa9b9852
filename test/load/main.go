// Command load is taskgate's load driver: it measures the figures of
// BENCHMARKS.md (P1–P6, P9), each as a ratio to a baseline measured side by side
// in the same run, and writes them as Markdown.
//
//	go run ./test/load -out BENCHMARKS.md        # what `make bench` runs
//	go run ./test/load -quick -only p1,p4        # a smoke run, to stdout
//
// It starts its own control planes (envtest: etcd + kube-apiserver from
// KUBEBUILDER_ASSETS) and webhook servers on 127.0.0.1; every loop is bounded
// in count and time, and everything is stopped when it returns, fails or is
// interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

type options struct {
	root, out, only, command string
	cpuProfile               string
	quick                    bool
	p1Creates, p1Rounds      int
	p1Modes                  []string
	p1Custom                 bool
	p1Profile                string
	p1ProfileFor             time.Duration
	p2Sat, p2Fixed           time.Duration
	p2Reps                   int
	p3Count, p3Creates       int
	p4Tasks, p4Rounds        int
	p4Reconciles             int
	p5Tasks                  int
	p6Objects                int
	p6KiB, p6ActAs           string
	p9Runs                   int
}

func main() {
	os.Exit(run())
}

func run() int {
	o := parseFlags()
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	r, err := measure(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 1
	}
	doc := r.markdown()
	if o.out == "-" {
		fmt.Print(doc)
		return 0
	}
	if err := os.WriteFile(o.out, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "load: wrote", o.out)
	return 0
}

func parseFlags() *options {
	o := &options{}
	flag.StringVar(&o.root, "root", ".", "repository root")
	flag.StringVar(&o.out, "out", "", "file to write the Markdown to; - for stdout (default BENCHMARKS.md, or - with -quick or -only)")
	flag.StringVar(&o.only, "only", "", "comma-separated subset of p1,p2,p3,p4,p5,p6,p9")
	flag.StringVar(&o.command, "command", "", "the command to name in the report (default: this one)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (load loops, in-process webhooks and controller) to this file")
	flag.BoolVar(&o.quick, "quick", false, "small counts and short durations, for a smoke run")
	flag.IntVar(&o.p1Creates, "p1-creates", 1000, "P1: creates per webhook mode and concurrency, of Tasks and of TaskRuns each")
	flag.IntVar(&o.p1Rounds, "p1-rounds", 10, "P1: rounds the creates are split into, modes interleaved in each")
	modes := flag.String("p1-modes", "", "P1: the modes to compare, separated by '/' (default all: "+strings.Join(p1Modes, "/")+"); taskgate, no-op and no webhooks are always among them")
	flag.BoolVar(&o.p1Custom, "p1-custom", true, "P1: also run the custom-image TaskRun variant (preflight on and off)")
	flag.StringVar(&o.p1Profile, "p1-profile", "", "P1: after the measured run, profile each P1 mode under load at concurrency 16 (the API server's /debug/pprof/profile and this process's CPU) into this directory")
	flag.DurationVar(&o.p1ProfileFor, "p1-profile-for", 20*time.Second, "P1: how long -p1-profile profiles each mode")
	flag.DurationVar(&o.p2Sat, "p2-saturation", 3*time.Second, "P2: duration of each closed-loop run")
	flag.DurationVar(&o.p2Fixed, "p2-fixed", 5*time.Second, "P2: duration of each fixed-rate run")
	flag.IntVar(&o.p2Reps, "p2-reps", 3, "P2: repetitions of the closed-loop and fixed-rate runs")
	flag.IntVar(&o.p3Count, "p3-count", 5, "P3: -count of the benchmark (the median is reported)")
	flag.IntVar(&o.p3Creates, "p3-creates", 400, "P3: Task creates (one client, taskgate's webhooks) whose median sets P3's target")
	flag.IntVar(&o.p4Tasks, "p4-tasks", 1000, "P4: TaskRuns per round")
	flag.IntVar(&o.p4Rounds, "p4-rounds", 3, "P4: rounds, controller and floor alternating")
	flag.IntVar(&o.p4Reconciles, "p4-reconciles", 4, "P4: MaxConcurrentReconciles (taskgate manager's default is 4)")
	flag.IntVar(&o.p5Tasks, "p5-tasks", 10000, "P5: finished TaskRuns in the cluster")
	flag.IntVar(&o.p9Runs, "p9-runs", 30, "P9: TaskRuns of each plugin, and Jobs, each timed to its first child")
	flag.IntVar(&o.p6Objects, "p6-objects", 2000, "P6: ConfigMaps one transformation patches")
	flag.StringVar(&o.p6KiB, "p6-kib", "1,32", "P6: comma-separated ConfigMap sizes (KiB of data each), one run each")
	flag.StringVar(&o.p6ActAs, "p6-act-as", "requester", "P6: the manager's --act-as (controller also grants it the transformationRules as its own rights)")
	flag.Parse()
	var err error
	if o.p1Modes, err = parseModes(*modes); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	if o.quick {
		o.p1Creates, o.p1Rounds, o.p2Sat, o.p2Fixed, o.p2Reps, o.p3Count = 40, 2, time.Second, 2*time.Second, 1, 1
		o.p3Creates = min(o.p3Creates, 40)
		o.p4Tasks, o.p4Rounds, o.p5Tasks = min(o.p4Tasks, 100), 1, min(o.p5Tasks, 500)
		o.p6Objects = min(o.p6Objects, 200)
		o.p9Runs = min(o.p9Runs, 5)
	}
	if o.out == "" {
		o.out = "BENCHMARKS.md"
		if o.quick || o.only != "" {
			o.out = "-"
		}
	}
	if o.command == "" {
		o.command = "go run ./test/load " + strings.Join(os.Args[1:], " ")
	}
	o.command = strings.TrimSpace(o.command)
	return o
}

func (o *options) wants(p string) bool {
	return o.only == "" || strings.Contains(","+o.only+",", ","+p+",")
}

// measure runs the figures: first those that need a quiet machine and no
// control plane (P3, P2), then P1, P4 and P9 on one control plane, then P5
// on a fresh one so that nothing but its own runs is in the cache.
func measure(ctx context.Context, o *options) (*report, error) {
	r := &report{opts: o, started: time.Now(), loadStart: loadAvg()}
	samples, err := kit.Samples(o.root)
	if err != nil {
		return nil, err
	}
	names, err := sampleNames(o.root)
	if err != nil {
		return nil, err
	}
	if o.wants("p3") {
		step("P3: in-process validate+default")
		if r.p3, r.p3Command, err = runP3(o.root, o.p3Count); err != nil {
			return nil, err
		}
		step("P3: Task create median through the API server, P3's yardstick")
		if r.p3Create, err = runP3Create(ctx, o.root, samples, names, o.p3Creates); err != nil {
			return nil, fmt.Errorf("P3 creates: %w", err)
		}
	}
	if o.wants("p2") {
		step("P2: webhook server alone over HTTPS")
		if r.p2, err = runP2(samples, []int{4, 16, 64}, o.p2Reps, o.p2Sat, 1000, o.p2Fixed); err != nil {
			return nil, fmt.Errorf("P2: %w", err)
		}
	}
	if o.wants("p1") || o.wants("p4") || o.wants("p9") {
		if err := withBenchEnv(o.root, func(e *benchEnv) error {
			if o.wants("p1") {
				if err := measureP1(ctx, o, e, r, samples, names); err != nil {
					return err
				}
			}
			if o.wants("p4") {
				step("P4: TaskRuns of a run-synchronization Task to Succeeded")
				if err := e.use(ctx, modeNone); err != nil {
					return err
				}
				if r.p4, err = runP4(ctx, e.cp, e.admin, e.manager, samples[syncSample(samples)], o.p4Tasks, 16, o.p4Reconciles, o.p4Rounds); err != nil {
					return fmt.Errorf("P4: %w", err)
				}
			}
			if o.wants("p9") {
				step("P9: a TaskRun's create to its first child's ÷ kube-controller-manager's Job create to its Pod's")
				if err := withManagerBinary(o.root, func(bin string) (err error) {
					r.p9, err = runP9(ctx, e, bin, samples, names, o.p9Runs)
					return err
				}); err != nil {
					return fmt.Errorf("P9: %w", err)
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if o.wants("p5") || o.wants("p6") {
		if err := withManagerBinary(o.root, func(bin string) error {
			if o.wants("p5") {
				step("P5: manager memory with finished TaskRuns")
				if err := withControlPlane(o.root, func(cp *kit.ControlPlane) (err error) {
					r.p5, err = runP5(ctx, cp, bin, samples, o.p5Tasks, 16)
					return err
				}); err != nil {
					return fmt.Errorf("P5: %w", err)
				}
			}
			if o.wants("p6") {
				step("P6: manager memory while a transformation patches large objects")
				sizes, err := parseKiB(o.p6KiB)
				if err != nil {
					return err
				}
				if err := withControlPlane(o.root, func(cp *kit.ControlPlane) (err error) {
					r.p6, err = runP6(ctx, cp, bin, o.p6Objects, sizes, o.p6ActAs)
					return err
				}); err != nil {
					return fmt.Errorf("P6: %w", err)
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	r.finished, r.loadEnd = time.Now(), loadAvg()
	return r, nil
}

// measureP1 runs P1's rows: Task creates, TaskRun creates, the custom-image
// TaskRuns with the preflight on and off, and the profiles when asked.
func measureP1(ctx context.Context, o *options, e *benchEnv, r *report, samples []*v1alpha1.Task, names []string) (err error) {
	concs := []int{1, 16}
	step("P1: Task create latency through the API server")
	if r.p1, err = runP1(ctx, e, p1Run{kind: kindTask, ns: p1TaskNamespace, samples: samples, names: names,
		creates: o.p1Creates, rounds: o.p1Rounds, concs: concs, modes: forTasks(o.p1Modes)}); err != nil {
		return fmt.Errorf("P1 Tasks: %w", err)
	}
	step("P1: TaskRun create latency through the API server")
	if r.p1Run, err = runP1(ctx, e, p1Run{kind: kindTaskRun, ns: p1RunNamespace, samples: samples, names: names,
		creates: o.p1Creates, rounds: o.p1Rounds, concs: concs, modes: o.p1Modes}); err != nil {
		return fmt.Errorf("P1 TaskRuns: %w", err)
	}
	if o.p1Custom {
		step("P1: custom-image TaskRun create latency, preflight on and off")
		ci, ciNames := customImage(samples, names)
		if r.p1Custom, err = runP1(ctx, e, p1Run{kind: kindTaskRun, ns: p1CustomNamespace, samples: ci, names: ciNames,
			creates: o.p1Creates, rounds: o.p1Rounds, concs: concs, modes: p1CustomModes}); err != nil {
			return fmt.Errorf("P1 custom-image: %w", err)
		}
	}
	if o.p1Profile != "" {
		step("P1: profiles of each mode under load, into " + o.p1Profile)
		if err := profileP1(ctx, e, o.p1Profile, samples, forTasks(o.p1Modes), 16, o.p1ProfileFor, o.cpuProfile == ""); err != nil {
			return fmt.Errorf("P1 profiles: %w", err)
		}
	}
	return nil
}

func withBenchEnv(root string, f func(*benchEnv) error) (err error) {
	e, err := startBenchEnv(root)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.Stop()) }()
	return f(e)
}

// withManagerBinary builds `taskgate manager` for f.
func withManagerBinary(root string, f func(bin string) error) error {
	dir, err := os.MkdirTemp("", "taskgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := testutil.BuildTaskgate(root, dir)
	if err != nil {
		return err
	}
	return f(bin)
}

// withControlPlane runs f on a fresh control plane.
func withControlPlane(root string, f func(*kit.ControlPlane) error) (err error) {
	cp, err := kit.StartControlPlane(root)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cp.Stop()) }()
	return f(cp)
}

func parseKiB(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var k int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &k); err != nil || k <= 0 {
			return nil, fmt.Errorf("-p6-kib %q: want positive integers", s)
		}
		out = append(out, k<<10)
	}
	return out, nil
}

// customImage picks the custom-image samples (and their names).
func customImage(samples []*v1alpha1.Task, names []string) ([]*v1alpha1.Task, []string) {
	var ts []*v1alpha1.Task
	var ns []string
	for i, s := range samples {
		if s.Spec.Plugin == v1alpha1.PluginCustomImage {
			ts, ns = append(ts, s), append(ns, names[i])
		}
	}
	return ts, ns
}

func syncSample(samples []*v1alpha1.Task) int {
	for i, s := range samples {
		if s.Spec.Plugin == v1alpha1.PluginRunSync {
			return i
		}
	}
	return 0
}

func sampleNames(root string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	for i, f := range files {
		files[i] = strings.TrimSuffix(filepath.Base(f), ".yaml")
	}
	return files, err
}

func step(s string) {
	fmt.Fprintf(os.Stderr, "%s load: %s\n", time.Now().Format("15:04:05"), s)
}
