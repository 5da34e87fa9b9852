package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

type p5Result struct {
	tasks       int
	empty, full p5Sample // the manager with no Tasks, and with `tasks`
}

type p5Sample struct {
	rss, hwm, anon, file int64   // bytes: VmRSS settled, VmHWM, RssAnon, RssFile
	heapLiveMiB          float64 // live heap after the last GC (gctrace)
	gcs                  int
	settle               time.Duration
}

// runP5 starts `taskgate manager` as a subprocess against an empty control
// plane, then against the same one filled with n finished Tasks (status
// written through the status subresource, no controller running), and
// reads its resident memory each time once its CPU use has settled.
func runP5(ctx context.Context, cp *kit.ControlPlane, bin string, samples []*v1alpha1.Task, n, workers int) (*p5Result, error) {
	const ns = "p5"
	res := &p5Result{tasks: n}
	// As in production: an ordinary user with the requester-mode rules.
	mgrUser, err := cp.AddManager(ctx)
	if err != nil {
		return nil, err
	}
	if res.empty, err = managerMemory(mgrUser.Kubeconfig, bin); err != nil {
		return nil, fmt.Errorf("no Tasks: %w", err)
	}
	if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	if err := createFinished(ctx, cp, samples, ns, n, workers); err != nil {
		return nil, err
	}
	if res.full, err = managerMemory(mgrUser.Kubeconfig, bin); err != nil {
		return nil, fmt.Errorf("%d Tasks: %w", n, err)
	}
	return res, nil
}

// managerMemory runs the manager until its CPU use has settled: the initial
// list reconciled (each finished Task is looked at once) and next to no CPU
// used for 5 s. Then it reads /proc/<pid>/status and stops it.
func managerMemory(kubeconfig, bin string) (p5Sample, error) {
	var s p5Sample
	p, err := testutil.StartProcess(bin, kubeconfig, []string{"GODEBUG=gctrace=1"}, kit.ManagerArgs...)
	if err != nil {
		return s, err
	}
	defer p.Stop(15 * time.Second)
	start := time.Now()
	if err := p.WaitOutput("Starting workers", 2*time.Minute); err != nil {
		return s, err
	}
	quiet, prev := 0, int64(-1)
	for quiet < 5 {
		if time.Since(start) > 3*time.Minute {
			return s, errors.New("manager CPU use did not settle in 3 minutes")
		}
		time.Sleep(time.Second)
		ticks, err := kit.CPUTicks(p.Pid())
		if err != nil {
			return s, fmt.Errorf("manager: %w\n%s", err, p.Output())
		}
		if prev >= 0 && ticks-prev <= 2 {
			quiet++
		} else {
			quiet = 0
		}
		prev = ticks
	}
	s.settle = time.Since(start)
	for field, into := range map[string]*int64{"VmRSS": &s.rss, "VmHWM": &s.hwm, "RssAnon": &s.anon, "RssFile": &s.file} {
		if *into, err = kit.ProcStatus(p.Pid(), field); err != nil {
			return s, err
		}
	}
	s.heapLiveMiB, s.gcs = lastLiveHeap(p.Output())
	return s, nil
}

// gctrace: "gc 12 @3.1s 2%: ... 8->9->4 MB, 9 MB goal, ..." — the third
// number is the heap live after that collection.
var gcLine = regexp.MustCompile(`(?m)^gc (\d+) @.*?(\d+)->(\d+)->(\d+) MB`)

func lastLiveHeap(out string) (float64, int) {
	m := gcLine.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, 0
	}
	last := m[len(m)-1]
	live, _ := strconv.ParseFloat(last[4], 64)
	gcs, _ := strconv.Atoi(last[1])
	return live, gcs
}

// createFinished creates one Task per sample, keeping n runs of each
// outcome (so the manager deletes none), and n TaskRuns of them, in turn,
// as admitted, each with the terminal status the controller would have
// written for it.
func createFinished(ctx context.Context, cp *kit.ControlPlane, samples []*v1alpha1.Task, ns string, n, workers int) error {
	tasks := make([]*v1alpha1.Task, len(samples))
	for i, s := range samples {
		tasks[i] = kit.NewTask(s, ns, fmt.Sprintf("task-%d", i))
		tasks[i].Spec.SuccessfulRunsHistoryLimit, tasks[i].Spec.FailedRunsHistoryLimit = ptr.To(int32(n)), ptr.To(int32(n))
		if err := cp.Client.Create(ctx, tasks[i]); err != nil {
			return err
		}
	}
	requester := &v1alpha1.Requester{Username: "bench-admin", Groups: []string{kit.AdminGroup, "system:authenticated"}}
	return firstError(inParallel(n, workers, func(i int) error {
		t := kit.Admitted(tasks[i%len(tasks)], fmt.Sprintf("done-%05d", i), requester)
		if err := cp.Client.Create(ctx, t); err != nil {
			return err
		}
		finished(t, i)
		return cp.Client.Status().Update(ctx, t)
	}))
}

// finished writes a plausible terminal status for the run's plugin; one in
// ten custom-image runs failed.
func finished(t *v1alpha1.TaskRun, i int) {
	finishLikeController(t)
	switch t.Plugin() {
	case v1alpha1.PluginCustomImage:
		t.Status.Synchronization = nil
		t.Status.CustomImage = &v1alpha1.CustomImageStatus{PodName: v1alpha1.PodName(t.Name),
			ServiceAccountName: v1alpha1.ServiceAccountName(t.Name, t.UID), ExitCode: ptr.To[int32](0)}
		t.Status.Message = "pod " + t.Status.CustomImage.PodName + " completed"
		t.Status.Conditions[0].Reason, t.Status.Conditions[0].Message = controller.ReasonCompleted, t.Status.Message
		if i%10 == 0 {
			t.Status.Phase, t.Status.CustomImage.ExitCode = v1alpha1.TaskFailed, ptr.To[int32](1)
			t.Status.Message = "pod " + t.Status.CustomImage.PodName + " failed with exit code 1"
			t.Status.Conditions[0].Status = metav1.ConditionFalse
			t.Status.Conditions[0].Reason, t.Status.Conditions[0].Message = controller.ReasonPodFailed, t.Status.Message
		}
	case v1alpha1.PluginTransformation:
		t.Status.Synchronization = nil
		t.Status.Transformation = &v1alpha1.TransformationStatus{Matched: 3, Patched: 2, Unchanged: 1}
		t.Status.Message = "3 matched, 2 patched, 1 unchanged"
		t.Status.Conditions[0].Reason, t.Status.Conditions[0].Message = controller.ReasonPatched, t.Status.Message
	}
}
