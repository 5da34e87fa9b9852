package controller

import (
	"go/ast"
	"go/parser"
	"go/token"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeschema "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// A finished Task is counted under its plugin and reason; a plugin or a
// reason this controller does not know (the webhook bypassed, a status
// written by hand) is counted as "unknown" or "other", so made-up values
// cannot grow the metric's series.
func TestObserveFinished(t *testing.T) {
	tests := []struct {
		name       string
		plugin     v1alpha1.Plugin
		reason     string
		wantPlugin string
		wantReason string
	}{
		{name: "known plugin and reason", plugin: v1alpha1.PluginRunSync, reason: ReasonTimeout,
			wantPlugin: string(v1alpha1.PluginRunSync), wantReason: ReasonTimeout},
		{name: "made-up plugin", plugin: "unit-test-plugin", reason: ReasonPodRejected, wantPlugin: "unknown", wantReason: ReasonPodRejected},
		{name: "made-up reason", plugin: v1alpha1.PluginCustomImage, reason: "SomethingNew",
			wantPlugin: string(v1alpha1.PluginCustomImage), wantReason: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := metav1.NewTime(time.Now().Add(-90 * time.Second))
			task := &v1alpha1.TaskRun{Spec: v1alpha1.TaskRunSpec{TaskSpec: &v1alpha1.PluginSpec{Plugin: tt.plugin}}}
			task.Status.StartTime = &start
			fail(task, tt.reason, "slow")
			deriveStatus(task, metav1.Now())
			counter := tasksFinished.WithLabelValues(tt.wantPlugin, "failed", tt.wantReason)
			before := testutil.ToFloat64(counter)
			observeFinished(task, 90*time.Second, true)
			if got := testutil.ToFloat64(counter) - before; got != 1 {
				t.Errorf("tasks finished{plugin=%q,reason=%q} moved by %v, want 1", tt.wantPlugin, tt.wantReason, got)
			}
			if got := testutil.ToFloat64(tasksFinished.WithLabelValues(string(tt.plugin), "failed", tt.reason)); got != 0 &&
				(tt.wantPlugin == "unknown" || tt.wantReason == "other") {
				t.Errorf("a series for the made-up label values exists")
			}
		})
	}
}

// Every reason a Task can finish with is a value of the reason label:
// adding a reason to reasons.go without adding it to finishReasons would
// count it as "other".
func TestFinishReasons(t *testing.T) {
	inProgress := []string{ReasonPending, ReasonRunning, ReasonPatching}
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			for _, n := range spec.(*ast.ValueSpec).Names {
				if strings.HasPrefix(n.Name, "Reason") {
					declared = append(declared, n.Name)
				}
			}
		}
	}
	if len(declared) != len(finishReasons)+len(inProgress) {
		t.Errorf("reasons.go declares %d reasons %v; finishReasons has %d plus %d in progress: keep them in step",
			len(declared), declared, len(finishReasons), len(inProgress))
	}
	seen := map[string]bool{}
	for _, r := range finishReasons {
		if seen[r] || slices.Contains(inProgress, r) {
			t.Errorf("finishReasons: %s twice, or in progress", r)
		}
		seen[r] = true
	}
}

// A Task this process started is timed on its clock, to the millisecond;
// one it did not start (another process, another Task of that name) from
// the whole-second status timestamps.
func TestRunDuration(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 400_000_000, time.UTC)
	start, end := metav1.NewTime(t0.Truncate(time.Second)), metav1.NewTime(t0.Add(time.Second).Truncate(time.Second))
	type mark struct {
		uid types.UID
		at  time.Time
	}
	tests := []struct {
		name  string
		marks []mark
		want  time.Duration
	}{
		{name: "started here", marks: []mark{{"a", t0}}, want: 300 * time.Millisecond},
		// A reconcile whose first status write was lost starts it again.
		{name: "started here twice: the first counts", marks: []mark{{"a", t0}, {"a", t0.Add(100 * time.Millisecond)}}, want: 300 * time.Millisecond},
		{name: "started elsewhere", want: time.Second},
		{name: "mark of another task of that name", marks: []mark{{"b", t0}}, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakePassiveClock(t0)
			r := &TaskRunReconciler{deps: &deps{clock: clk}}
			task := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t", UID: "a"}}
			task.Status.StartTime, task.Status.CompletionTime = &start, &end
			for _, m := range tt.marks {
				marked := task.DeepCopy()
				marked.UID = m.uid
				r.starts.start(marked, m.at)
			}
			clk.SetTime(t0.Add(300 * time.Millisecond))
			if got, ok := r.runDuration(task); !ok || got != tt.want {
				t.Errorf("runDuration() = %v, %v; want %v", got, ok, tt.want)
			}
			if _, ok := r.starts.take(task); ok {
				t.Error("the mark outlived the Task's finish")
			}
		})
	}
}

func TestFinishedTTL(t *testing.T) {
	tests := []struct {
		name    string
		spec    *int32
		deflt   time.Duration
		want    time.Duration
		wantSet bool
	}{
		{name: "neither: kept"},
		{name: "manager default", deflt: time.Hour, want: time.Hour, wantSet: true},
		{name: "spec wins", spec: ptr.To[int32](30), deflt: time.Hour, want: 30 * time.Second, wantSet: true},
		{name: "spec 0: at once", spec: ptr.To[int32](0), deflt: time.Hour, want: 0, wantSet: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &TaskRunReconciler{finishedTaskTTL: tt.deflt}
			got, set := r.finishedTTL(&v1alpha1.TaskRun{Spec: v1alpha1.TaskRunSpec{TTLSecondsAfterFinished: tt.spec}})
			if got != tt.want || set != tt.wantSet {
				t.Errorf("finishedTTL() = %v, %v; want %v, %v", got, set, tt.want, tt.wantSet)
			}
		})
	}
}

func TestBuildInfo(t *testing.T) {
	SetBuildVersion("v1.2.3")
	if n := testutil.CollectAndCount(buildInfo); n != 1 {
		t.Errorf("taskgate_build_info has %d series, want 1", n)
	}
	if got := testutil.ToFloat64(buildInfo.WithLabelValues("v1.2.3", runtime.Version())); got != 1 {
		t.Errorf("taskgate_build_info{version=v1.2.3} = %v, want 1", got)
	}
}

// taskgate_tasks counts the cache's Tasks by plugin and phase, every known
// pair reported (0 included), nothing while no manager leads.
func TestTaskCounter(t *testing.T) {
	scheme := runtimeschema.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, p v1alpha1.Plugin, status metav1.ConditionStatus, reason string) client.Object {
		task := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: v1alpha1.TaskRunSpec{TaskSpec: &v1alpha1.PluginSpec{Plugin: p}}}
		if reason != "" {
			task.Status.Conditions = cond(status, reason, "")
		}
		return task
	}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		mk("new", v1alpha1.PluginCustomImage, "", ""),
		mk("running", v1alpha1.PluginCustomImage, metav1.ConditionUnknown, ReasonRunning),
		mk("done", v1alpha1.PluginTransformation, metav1.ConditionTrue, ReasonPatched),
		mk("made-up", "unit-test-plugin", metav1.ConditionFalse, ReasonUnknownPlugin),
	).Build()

	c := &taskCounter{desc: tasks.desc, sources: map[*taskSource]struct{}{}}
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("no source: %d series, want none", n)
	}
	c.sources[&taskSource{reader: reader}] = struct{}{}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 {
		t.Fatalf("gather: %v, %d families", err, len(families))
	}
	got := map[string]float64{}
	for _, m := range families[0].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		got[l["plugin"]+"/"+l["phase"]] = m.GetGauge().GetValue()
	}
	want := map[string]float64{"custom-image/Pending": 1, "custom-image/Running": 1,
		"kubernetes-object-transformation/Succeeded": 1, "unknown/Failed": 1, "run-synchronization/Failed": 0}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("taskgate_tasks{%s} = %v (reported %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(v1alpha1.Plugins)*len(phases)+1 {
		t.Errorf("%d series, want every plugin and phase plus unknown/Failed: %v", len(got), got)
	}
}
