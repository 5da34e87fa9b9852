package controller_test

import (
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
)

// Rules a test's requesters hold in their namespace.
var (
	createTaskRuns = rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"taskruns"}, Verbs: []string{"create", "get"}}
	createPods     = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}
)

// The custom-image Pod is created as the run's requester: one who may not
// create Pods gets a Failed run with the API server's refusal and no Pod;
// one who may gets their Pod. The manager itself may not create Pods (checked
// first), so a Pod that exists was created as the requester.
func TestCustomImageActsAsRequester(t *testing.T) {
	ns := parallelWithManager(t)
	if mayCreatePods(t, managerUser, nil, ns) {
		t.Fatalf("%s may create pods in %s: the test would prove nothing", managerUser, ns)
	}

	masters := &v1alpha1.Requester{Username: "break-glass@" + ns, Groups: []string{actas.MastersGroup}}
	tests := []struct {
		name       string
		requester  *v1alpha1.Requester
		wantPod    bool
		wantReason string
		wantText   []string
	}{
		{name: "tasks-only", requester: newRequester(t, ns, "tasks-only", []rbacv1.PolicyRule{createTaskRuns}, nil),
			wantReason: controller.ReasonForbidden, wantText: []string{`cannot create resource "pods"`, "tasks-only@" + ns}},
		{name: "pod-creator", requester: newRequester(t, ns, "pod-creator", []rbacv1.PolicyRule{createTaskRuns, createPods}, nil), wantPod: true},
		{name: "masters-only", requester: masters,
			wantReason: controller.ReasonForbidden, wantText: []string{`cannot create resource "pods"`, "which Kubernetes does not let taskgate impersonate"}},
		{name: "admin-by-group", requester: adminRequester, wantPod: true},
		{name: "no-requester", wantReason: controller.ReasonNoRequester, wantText: []string{"no spec.requester", "create it again"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mustCreate(t, withRequester(makeRun(t, ns, tt.name, v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true")), tt.requester))
			if tt.wantPod {
				pod := waitForPod(t, ns, tt.name)
				task := waitForRun(t, ns, tt.name, v1alpha1.TaskPending)
				isControlledBy(t, pod, task)
				return
			}
			task := waitForRun(t, ns, tt.name, v1alpha1.TaskFailed)
			c := succeededCondition(t, task)
			if c.Reason != tt.wantReason {
				t.Errorf("reason = %s (%s), want %s", c.Reason, c.Message, tt.wantReason)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(c.Message, want) {
					t.Errorf("message %q does not say %q", c.Message, want)
				}
			}
			wantEventNote(t, task, controller.EventFailed, tt.wantText...)
			wantAbsent(t, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName(tt.name)}, &corev1.Pod{})
			if tt.requester == nil { // nothing at all is created for nobody
				wantAbsent(t, client.ObjectKey{Namespace: ns, Name: runSA(t, ns, tt.name)}, &corev1.ServiceAccount{})
			}
		})
	}
}

// A Pod the API server's admission refuses (here PodSecurity "restricted")
// fails the run as PodRejected with the API server's own text; no Pod.
func TestCustomImagePodRejected(t *testing.T) {
	t.Parallel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tg-restricted-",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	mustCreate(t, ns)
	startManager(t, ns.Name)

	mustCreate(t, makeRun(t, ns.Name, "loose", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true")))
	task := waitForRun(t, ns.Name, "loose", v1alpha1.TaskFailed)
	if c := succeededCondition(t, task); c.Reason != controller.ReasonPodRejected || !strings.Contains(c.Message, "violates PodSecurity") {
		t.Errorf("condition = %s: %s, want PodRejected with the PodSecurity refusal", c.Reason, c.Message)
	}
	wantEventNote(t, task, controller.EventFailed, "violates PodSecurity")
	wantAbsent(t, client.ObjectKey{Namespace: ns.Name, Name: v1alpha1.PodName("loose")}, &corev1.Pod{})
}

// --act-as=controller keeps the manager's own identity: a requester with no
// rights at all still gets the Pod, because the manager may create Pods.
// That mode relies on admission's checks alone (the webhook does not run
// here), which is why it is documented as weaker.
func TestControllerModeUsesOwnIdentity(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerWith(t, ns, managerOptions{config: controllerModeCfg, controller: controller.Options{ActAs: actas.ModeController}})

	nobody := &v1alpha1.Requester{Username: "nobody@" + ns}
	if mayCreatePods(t, nobody.Username, nil, ns) {
		t.Fatalf("%s may create pods", nobody.Username)
	}
	mustCreate(t, withRequester(makeRun(t, ns, "own", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true")), nobody))
	pod := waitForPod(t, ns, "own")
	isControlledBy(t, pod, waitForRun(t, ns, "own", v1alpha1.TaskPending))
}

// mayCreatePods asks the API server whether user (in groups) may create
// Pods in ns.
func mayCreatePods(t *testing.T, user string, groups []string, ns string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods"},
	}}
	mustCreate(t, sar)
	return sar.Status.Allowed
}

// wantAbsent checks that no object of obj's kind exists at key.
func wantAbsent(t *testing.T, key client.ObjectKey, obj client.Object) {
	t.Helper()
	if err := get(t, key, obj); !apierrors.IsNotFound(err) {
		t.Errorf("%T %s: %v, want NotFound", obj, key, err)
	}
}

// wantEventNote waits for the run's Event of reason and checks that its
// note contains each of notes.
func wantEventNote(t *testing.T, task *v1alpha1.TaskRun, reason string, notes ...string) {
	t.Helper()
	events := waitForEventsList(t, task, reason)
	for _, e := range events {
		if e.Reason != reason {
			continue
		}
		if e.Type != corev1.EventTypeWarning && reason == controller.EventFailed {
			t.Errorf("%s event type = %s, want Warning", reason, e.Type)
		}
		for _, n := range notes {
			if !strings.Contains(e.Note, n) {
				t.Errorf("%s event note = %q, want it to contain %q", reason, e.Note, n)
			}
		}
	}
}
