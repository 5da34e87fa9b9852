package admission_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/webhook"
)

// TestSamplesAdmittedWithDefaults applies each seed sample with kubectl and
// checks the stored Task carries the defaults.
func TestSamplesAdmittedWithDefaults(t *testing.T) {
	ns := namespace(t, "samples")
	tests := []struct {
		file string
		name string
		want map[string]string // spec.config key -> stored JSON
		warn string
	}{
		{file: "custom-image-hello-world.yaml", name: "hello-world",
			want: map[string]string{"namespace": `"samples"`, "timeoutSeconds": "3600", "retries": "0", "image": `"busybox"`},
			warn: `spec.config.image "busybox" has no tag`},
		{file: "custom-image-kubectl.yaml", name: "kubectl",
			want: map[string]string{"clusterRole": `"cluster-admin"`, "namespace": `"samples"`},
			warn: "cluster-admin"},
		{file: "transformation-set-replica-to-1.yaml", name: "set-replica-to-1",
			want: map[string]string{"namespaces": `["samples"]`}},
		{file: "run-synchronization.yaml", name: "restore-from-dr",
			want: map[string]string{"template": `{"metadata":{"annotations":{"env":"dev"},"labels":{"env":"dev"}},"spec":{"config":{"destinationName":"main-cluster","sourceName":"dr-cluster"},"plugin":"kubernetes-to-kubernetes"}}`}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out, err := kubectl(t, "", "apply", "-n", ns, "-f", filepath.Join("../../config/samples", tt.file))
			if err != nil {
				t.Fatalf("kubectl apply: %v\n%s", err, out)
			}
			if tt.warn != "" && !strings.Contains(out, "Warning: ") || !strings.Contains(out, tt.warn) {
				t.Errorf("kubectl output lacks warning %q:\n%s", tt.warn, out)
			}
			var task v1alpha1.Task
			if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: tt.name}, &task); err != nil {
				t.Fatal(err)
			}
			var cfg map[string]json.RawMessage
			if err := json.Unmarshal(task.Spec.Config.Raw, &cfg); err != nil {
				t.Fatal(err)
			}
			if sa, has := cfg["serviceAccountName"]; has {
				t.Errorf("stored serviceAccountName %s: a Task's ServiceAccount belongs to its runs, none is defaulted", sa)
			}
			for k, v := range tt.want {
				if got := string(cfg[k]); got != v {
					t.Errorf("stored spec.config.%s = %s, want %s", k, got, v)
				}
			}
			// Applying the same file again is a no-op, not a refused spec change.
			if out, err := kubectl(t, "", "apply", "-n", ns, "-f", filepath.Join("../../config/samples", tt.file)); err != nil {
				t.Errorf("second apply: %v\n%s", err, out)
			}
		})
	}
}

// TestInvalidCasesRefused applies every invalid schema case with kubectl: each
// is refused and the output names each field its "# want:" lines give.
func TestInvalidCasesRefused(t *testing.T) {
	ns := namespace(t, "invalid")
	files, err := filepath.Glob("../../schemas/testdata/*/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid cases: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, "../../schemas/testdata/"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// The cases are written for namespace default; run them in ours.
			doc := strings.Replace(string(data), "namespace: default", "namespace: "+ns, 1)
			out, err := kubectl(t, doc, "apply", "-f", "-")
			if err == nil {
				t.Fatalf("admitted, want refused:\n%s", out)
			}
			if !strings.Contains(out, "is invalid") {
				t.Errorf("want a 422 Invalid refusal, got:\n%s", out)
			}
			for _, line := range strings.Split(doc, "\n") {
				want, ok := strings.CutPrefix(line, "# want: ")
				if !ok {
					continue
				}
				want = strings.ReplaceAll(want, `kube-system": the Pod runs in the Task's namespace`, `kube-system": the Pod runs in the Task's namespace`)
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestUnknownPluginAndSyncPlugin(t *testing.T) {
	ns := namespace(t, "typos")
	tests := []struct {
		name, doc, want string
	}{
		{name: "plugin", doc: taskYAML("typo1", ns, "custom-imag", "image: busybox:1.36\ncommand: [echo]"),
			want: `spec.plugin: Unsupported value: "custom-imag": did you mean "custom-image"?`},
		{name: "sync plugin from the reference docs", doc: mustRead(t, "../../config/bad-samples/typo-sync-plugin.yaml"),
			want: `spec.config.template.spec.plugin: Unsupported value: "kuberentes-to-kubernetes": did you mean "kubernetes-to-kubernetes"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := kubectl(t, tt.doc, "apply", "-n", ns, "-f", "-")
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("err %v, output:\n%s\nwant %q", err, out, tt.want)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDryRun(t *testing.T) {
	ns := namespace(t, "dryrun")
	good := taskYAML("dry", ns, v1alpha1.PluginCustomImage, "image: busybox:1.36\ncommand: [echo]")
	out, err := kubectl(t, good, "apply", "--dry-run=server", "-o", "jsonpath={.spec.config.namespace}", "-f", "-")
	if err != nil || out != ns {
		t.Fatalf("server dry-run: %v\n%s (want the defaulted namespace %s)", err, out, ns)
	}
	var task v1alpha1.Task
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "dry"}, &task); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run stored the Task (get: %v)", err)
	}
	bad := taskYAML("dry-bad", ns, v1alpha1.PluginCustomImage, "image: busybox:1.36")
	if out, err := kubectl(t, bad, "apply", "--dry-run=server", "-f", "-"); err == nil || !strings.Contains(out, "spec.config.command: Required value") {
		t.Errorf("dry-run of a bad Task: %v\n%s", err, out)
	}
}

// TestMalformedReviewOverTLS posts garbage straight to the webhook server, as
// the API server's TLS client would reach it: 400, never a 500 or a hang.
func TestMalformedReviewOverTLS(t *testing.T) {
	wo := cp.Env.WebhookInstallOptions
	ca, err := os.ReadFile(filepath.Join(wo.LocalServingCertDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for _, body := range []string{"", "{", `{"kind":"AdmissionReview"}`, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","object":[1]}}`} {
		url := fmt.Sprintf("https://%s:%d/validate-automation-astronetes-io-v1alpha1-task", wo.LocalServingHost, wo.LocalServingPort)
		resp, err := c.Post(url, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if body == `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","object":[1]}}` {
			if resp.StatusCode != http.StatusOK {
				t.Errorf("well-formed review with a bad object: HTTP %d, want 200 with a refusal", resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %q: HTTP %d, want 400", body, resp.StatusCode)
		}
	}
}

// TestGenerateName: a TaskRun created with metadata.generateName, as
// `taskgate run` creates one, is admitted (preflight included: the dry-run
// Pod is named as the API server would name it). No serviceAccountName is
// defaulted into the snapshot, nor into a Task: the ServiceAccount belongs to
// the run, and the controller derives v1alpha1.DefaultServiceAccountName
// from the run's name (test/controller covers that half).
func TestGenerateName(t *testing.T) {
	ns := namespace(t, "generated")
	must(t, k8s.Create(context.Background(), newTask(ns, "hello", v1alpha1.PluginCustomImage, echoConfig)))
	doc := strings.Replace(runYAML("", ns, "hello"), "  name: \n", "  generateName: run-\n", 1)
	out, err := kubectl(t, doc, "create", "-o", "jsonpath={.metadata.name} {.spec.taskSpec.config.serviceAccountName}", "-f", "-")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	name, sa, _ := strings.Cut(out, " ")
	if !strings.HasPrefix(name, "run-") || len(name) <= len("run-") {
		t.Fatalf("stored name %q, want one generated from run-", name)
	}
	if sa != "" {
		t.Errorf("stored serviceAccountName %q, want none: the run's own ServiceAccount is named by the controller from the run's name %s and UID",
			sa, name)
	}
}

// TestWebhookMode checks the API server calls the webhooks of the mode the
// suite runs in, so that a run in single-call mode really has no validating
// webhook to fall back on.
func TestWebhookMode(t *testing.T) {
	ctx := context.Background()
	mw := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := k8s.Get(ctx, types.NamespacedName{Name: "taskgate-mutating"}, mw); err != nil {
		t.Fatal(err)
	}
	wantPath, wantPolicy := webhook.MutatePath, admissionregistrationv1.NeverReinvocationPolicy
	if singleCall {
		wantPath, wantPolicy = webhook.AdmitPath, admissionregistrationv1.IfNeededReinvocationPolicy
	}
	if len(mw.Webhooks) != 1 || mw.Webhooks[0].ClientConfig.URL == nil ||
		!strings.HasSuffix(*mw.Webhooks[0].ClientConfig.URL, wantPath) ||
		mw.Webhooks[0].ReinvocationPolicy == nil || *mw.Webhooks[0].ReinvocationPolicy != wantPolicy {
		t.Errorf("mutating webhooks = %+v, want one calling %s, reinvocation %s", mw.Webhooks, wantPath, wantPolicy)
	}
	err := k8s.Get(ctx, types.NamespacedName{Name: "taskgate-validating"}, &admissionregistrationv1.ValidatingWebhookConfiguration{})
	switch {
	case singleCall && !apierrors.IsNotFound(err):
		t.Errorf("single-call mode: validating configuration: %v, want none", err)
	case !singleCall && err != nil:
		t.Errorf("validating configuration: %v", err)
	}
}
