package admission_test

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

// podSecurityNamespace creates a namespace that enforces a Pod Security level.
func podSecurityNamespace(t *testing.T, name, level string) string {
	t.Helper()
	bareNamespace(t, name, map[string]string{"pod-security.kubernetes.io/enforce": level})
	return namespace(t, name)
}

// TestPreflight: the API server's own admission refuses a TaskRun of a
// custom-image Task at kubectl create when it would refuse its Pod at run
// time, in its own words; where it would not, the run is admitted. The
// Task itself is admitted everywhere: it runs nothing.
func TestPreflight(t *testing.T) {
	ctx := context.Background()
	restricted := podSecurityNamespace(t, "psa-restricted", "restricted")
	baseline := podSecurityNamespace(t, "psa-baseline", "baseline")
	quota := namespace(t, "quota")
	rq := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods", Namespace: quota},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
	must(t, k8s.Create(ctx, rq))
	// kube-controller-manager's quota controller (not run by envtest) fills
	// in the status; until it has, the quota admission plugin refuses every Pod.
	rq.Status = corev1.ResourceQuotaStatus{Hard: rq.Spec.Hard, Used: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}
	must(t, k8s.Status().Update(ctx, rq))
	noSA := bareNamespace(t, "no-default-sa", nil)

	tests := []struct {
		name, ns string
		args     []string
		generate bool
		want     []string // in kubectl's output
		refused  bool
	}{
		{name: "restricted namespace refuses the Pod with PodSecurity's text", ns: restricted, refused: true,
			want: []string{"spec.taskSpec.config: Forbidden: the API server refuses the run's Pod (server-side dry run as " + adminUser + ")",
				`violates PodSecurity "restricted:latest"`, "runAsNonRoot != true"}},
		{name: "kubectl --dry-run=server is refused the same", ns: restricted, args: []string{"--dry-run=server"}, refused: true,
			want: []string{`violates PodSecurity "restricted:latest"`}},
		{name: "generateName is refused the same", ns: restricted, generate: true, refused: true,
			want: []string{`violates PodSecurity "restricted:latest"`}},
		{name: "baseline namespace admits it", ns: baseline},
		{name: "a quota of no Pods refuses it", ns: quota, refused: true,
			want: []string{"the API server refuses the run's Pod", "exceeded quota: no-pods"}},
		{name: "no ServiceAccount to dry-run with: admitted with a warning", ns: noSA,
			want: []string{"Warning: the run's Pod could not be dry-run", `error looking up service account no-default-sa/default`}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "pf-" + string(rune('a'+i))
			if out, err := kubectl(t, taskYAML(name, tt.ns, v1alpha1.PluginCustomImage, plainImage), "apply", "-f", "-"); err != nil {
				t.Fatalf("the Task refused: %v\n%s", err, out)
			}
			doc := runYAML(name, tt.ns, name)
			if tt.generate {
				doc = strings.Replace(doc, "  name: "+name+"\n", "  generateName: pf-\n", 1)
			}
			out, err := kubectl(t, doc, append([]string{"create", "-f", "-"}, tt.args...)...)
			if tt.refused != (err != nil) {
				t.Errorf("refused %v, want %v:\n%s", err != nil, tt.refused, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestPreflightOff: with the preflight off the same Validator admits the
// run the restricted namespace refuses, its access checks still answered
// by the API server; with it on, built as the manager builds it, refuses.
func TestPreflightOff(t *testing.T) {
	ctx := context.Background()
	ns := podSecurityNamespace(t, "psa-off", "restricted")
	admin, err := actas.Self(ctx, adminCfg)
	must(t, err)
	manager, err := client.New(managerCfg, client.Options{Scheme: testutil.Scheme()})
	must(t, err)
	a, err := webhook.NewAdmitterFromOptions(webhook.Options{})
	must(t, err)
	task := newTask(ns, "off", v1alpha1.PluginCustomImage, echoConfig)
	if errs := a.Default(task); len(errs) > 0 {
		t.Fatal(errs)
	}
	run := inlineRun(ns, "off", task.Spec.Plugin, string(task.Spec.Config.Raw))
	run.Spec.Requester = actas.FromUserInfo(admin)
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Create, UserInfo: admin, Namespace: ns}}
	reqCtx := admission.NewContextWithRequest(ctx, req)

	off := &webhook.Validator{Admitter: a, Authz: webhook.SARAuthorizer{Client: manager}}
	if _, err := off.ValidateRunCreate(reqCtx, run.DeepCopy()); err != nil {
		t.Errorf("preflight off: refused %v", err)
	}
	// The manager's own discovery, as SetupWithManager passes mgr.GetRESTMapper():
	// the requester's clients do not discover as the requester.
	f, err := actas.NewFactory(actas.ModeRequester, managerCfg, testutil.Scheme(), manager.RESTMapper())
	must(t, err)
	on := &webhook.Validator{Admitter: a, Authz: webhook.SARAuthorizer{Client: manager}, Preflight: &webhook.Preflight{Clients: f.For}}
	if _, err := on.ValidateRunCreate(reqCtx, run.DeepCopy()); err == nil || !strings.Contains(err.Error(), `violates PodSecurity "restricted:latest"`) {
		t.Errorf("preflight on: %v, want PodSecurity's refusal", err)
	}
}
