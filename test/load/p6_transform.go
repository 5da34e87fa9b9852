package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

// p6Result is the manager's memory while one transformation patches many
// ConfigMaps, for each object size.
type p6Result struct {
	objects int
	actAs   string
	runs    []p6Run
}

// p6Run is one size: the manager idle, then while the Task ran.
type p6Run struct {
	size                 int   // bytes of data per ConfigMap
	totalBytes           int64 // data bytes of all of them
	idleRSS, idleHWM     int64 // settled, before the Task
	peakRSS, peakHWM     int64 // highest VmRSS sampled during the Task; VmHWM after it
	idleHeap, peakHeapMB float64
	took                 time.Duration
	status               string // phase and message the Task ended with
	patched              int64
}

// growth is the peak RSS while the Task ran above the idle RSS of the same
// process.
func (r p6Run) growth() int64 { return max(r.peakRSS, r.peakHWM) - r.idleRSS }

const p6Label = "bench.astronetes.io/p6"

// runP6 starts `taskgate manager` (as kit.ManagerUser, the controller
// only) and, for each size, fills a namespace with n ConfigMaps of that
// size, lets the manager settle, reads its memory, creates one
// transformation Task adding an annotation to every ConfigMap (requester:
// the admin), and samples the manager's RSS until the Task has finished.
func runP6(ctx context.Context, cp *kit.ControlPlane, bin string, n int, sizes []int, actAs string) (*p6Result, error) {
	admin, err := cp.AddAdmin(ctx, "bench-admin")
	if err != nil {
		return nil, err
	}
	mgrUser, err := cp.AddManager(ctx)
	if err != nil {
		return nil, err
	}
	if actAs == string(actas.ModeController) {
		// --act-as=controller: the chart's transformationRules as the
		// manager's own rights instead of impersonate-on rules.
		if err := grantOwn(ctx, cp, kit.TransformationRules, "get", "list", "patch"); err != nil {
			return nil, err
		}
	}
	requester, err := actas.Self(ctx, admin.Config)
	if err != nil {
		return nil, err
	}
	res := &p6Result{objects: n, actAs: actAs}
	for i, size := range sizes {
		ns := fmt.Sprintf("p6-%d", i)
		step(fmt.Sprintf("P6: %d ConfigMaps of %d KiB", n, size>>10))
		if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
		if err := createConfigMaps(ctx, admin.Client, ns, n, size, 16); err != nil {
			return nil, err
		}
		run, err := p6Once(ctx, cp, admin, mgrUser, bin, ns, n, size, actAs, actas.FromUserInfo(requester))
		if err != nil {
			return nil, fmt.Errorf("%d KiB: %w", size>>10, err)
		}
		res.runs = append(res.runs, run)
		// The next size meets a store without these.
		if err := cp.Client.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns), client.MatchingLabels{p6Label: "big"}); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func p6Once(ctx context.Context, cp *kit.ControlPlane, admin, mgrUser *testutil.Identity, bin, ns string, n, size int, actAs string, requester *v1alpha1.Requester) (p6Run, error) {
	run := p6Run{size: size, totalBytes: int64(n) * int64(size)}
	args := append(append([]string{}, kit.ManagerArgs...), "--act-as="+actAs, fmt.Sprintf("--max-transformation-objects=%d", n))
	p, err := testutil.StartProcess(bin, mgrUser.Kubeconfig, []string{"GODEBUG=gctrace=1"}, args...)
	if err != nil {
		return run, err
	}
	defer p.Stop(15 * time.Second)
	if err := settle(p, 3); err != nil {
		return run, err
	}
	var errs []error
	for field, into := range map[string]*int64{"VmRSS": &run.idleRSS, "VmHWM": &run.idleHWM} {
		var err error
		*into, err = kit.ProcStatus(p.Pid(), field)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return run, err
	}
	run.idleHeap, _ = lastLiveHeap(p.Output())
	gcBefore := len(p.Output())

	task, err := p6Task(ns, requester)
	if err != nil {
		return run, err
	}
	start := time.Now()
	if err := admin.Client.Create(ctx, task); err != nil {
		return run, fmt.Errorf("create TaskRun: %w", err)
	}
	deadline := start.Add(10 * time.Minute)
	var lastPoll time.Time
	for ; ; time.Sleep(20 * time.Millisecond) {
		if rss, err := kit.ProcStatus(p.Pid(), "VmRSS"); err == nil {
			run.peakRSS = max(run.peakRSS, rss)
		} else {
			return run, fmt.Errorf("manager: %w\n%s", err, tail(p.Output(), 4000))
		}
		if time.Since(lastPoll) < 200*time.Millisecond {
			continue
		}
		lastPoll = time.Now()
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(task), task); err != nil {
			return run, err
		}
		if task.Status.Phase == v1alpha1.TaskSucceeded || task.Status.Phase == v1alpha1.TaskFailed {
			break
		}
		if time.Now().After(deadline) {
			return run, fmt.Errorf("transformation not finished after 10 minutes (phase %q)", task.Status.Phase)
		}
	}
	run.took = time.Since(start)
	if run.peakHWM, err = kit.ProcStatus(p.Pid(), "VmHWM"); err != nil {
		return run, err
	}
	run.peakHeapMB = peakHeap(p.Output()[gcBefore:])
	run.status = fmt.Sprintf("%s: %s", task.Status.Phase, task.Status.Message)
	if task.Status.Transformation != nil {
		run.patched = int64(task.Status.Transformation.Patched)
	}
	if task.Status.Phase != v1alpha1.TaskSucceeded {
		return run, fmt.Errorf("transformation %s\n%s", run.status, tail(p.Output(), 4000))
	}
	return run, nil
}

// settle waits for the manager's workers, then until its CPU use has been
// near zero for quiet seconds in a row.
func settle(p *testutil.Process, quiet int) error {
	if err := p.WaitOutput("Starting workers", 2*time.Minute); err != nil {
		return err
	}
	start, q, prev := time.Now(), 0, int64(-1)
	for q < quiet {
		if time.Since(start) > 2*time.Minute {
			return errors.New("manager CPU use did not settle in 2 minutes")
		}
		time.Sleep(time.Second)
		ticks, err := kit.CPUTicks(p.Pid())
		if err != nil {
			return fmt.Errorf("manager: %w\n%s", err, tail(p.Output(), 4000))
		}
		if prev >= 0 && ticks-prev <= 2 {
			q++
		} else {
			q = 0
		}
		prev = ticks
	}
	return nil
}

// p6Task is a one-off TaskRun of a transformation of every p6 ConfigMap of
// ns, adding an annotation, defaulted as the mutating webhook would and with
// the requester it would record (no webhooks run in P6: the manager's
// memory is the figure, and admission is P1's).
func p6Task(ns string, requester *v1alpha1.Requester) (*v1alpha1.TaskRun, error) {
	cfg := fmt.Sprintf(`{"resources":[{"version":"v1","resource":"configmaps","scope":%q}],"labelSelector":{"matchLabels":{%q:"big"}},`+
		`"operations":[{"mergePatch":{"metadata":{"annotations":{"bench.astronetes.io/patched":"yes"}}}}]}`, v1alpha1.ScopeNamespaced, p6Label)
	t := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "annotate-all"},
		Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: v1alpha1.PluginTransformation, Config: runtime.RawExtension{Raw: []byte(cfg)}}}}
	a, err := webhook.NewAdmitterFromOptions(webhook.Options{})
	if err != nil {
		return nil, err
	}
	if errs := a.Default(t); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	run := kit.NewInlineRun(ns, t.Name, &t.Spec.PluginSpec)
	run.Spec.Requester = requester
	return run, nil
}

// createConfigMaps creates n ConfigMaps of size data bytes each in ns.
func createConfigMaps(ctx context.Context, c client.Client, ns string, n, size, workers int) error {
	blob := strings.Repeat("x", size)
	return firstError(inParallel(n, workers, func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("big-%05d", i),
			Labels: map[string]string{p6Label: "big"}}, Data: map[string]string{"blob": blob}}
		if err := c.Create(ctx, cm); err != nil {
			return fmt.Errorf("create ConfigMap %s: %w", cm.Name, err)
		}
		return nil
	}))
}

// grantOwn gives kit.ManagerUser the verbs on the resources of rules as
// its own rights (what --act-as=controller needs).
func grantOwn(ctx context.Context, cp *kit.ControlPlane, rules []rbacv1.PolicyRule, verbs ...string) error {
	const name = kit.ManagerUser + "-controller-mode"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, r := range rules {
		r.Verbs = verbs
		role.Rules = append(role.Rules, r)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: kit.ManagerUser}}}
	for _, o := range []client.Object{role, crb} {
		if err := cp.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// peakHeap is the largest heap size gctrace reported at the end of a
// collection ("8->9->4 MB": the second number).
func peakHeap(out string) float64 {
	var peak float64
	for _, m := range gcLine.FindAllStringSubmatch(out, -1) {
		var v float64
		if _, err := fmt.Sscan(m[3], &v); err == nil {
			peak = max(peak, v)
		}
	}
	return peak
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("[...%d bytes...]\n%s", len(s)-n, s[len(s)-n:])
}
