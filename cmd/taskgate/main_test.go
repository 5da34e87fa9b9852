package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/webhook"
)

func TestValidateCommand(t *testing.T) {
	mixed := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(mixed, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
	multi := write("multi.yaml", `apiVersion: automation.astronetes.io/v1alpha1
kind: Task
metadata: {name: a, namespace: shop}
spec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}
---
apiVersion: automation.astronetes.io/v1alpha1
kind: Task
metadata: {name: b}
spec: {plugin: custom-image, config: {image: busybox:1.36, comand: [echo]}}
`)
	notTask := filepath.Join(t.TempDir(), "only-deploy.yaml")
	if err := os.WriteFile(notTask, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantOut    []string
		wantErr    []string
		notWantOut []string
	}{
		{name: "samples valid", args: []string{"validate", "-f", "../../config/samples"}, wantCode: 0,
			wantOut: []string{"Task default/hello-world is valid", "Task default/restore-from-dr is valid"},
			wantErr: []string{"authorization checks", "were skipped", `"busybox" has no tag`}},
		{name: "bad samples invalid", args: []string{"validate", "-f", "../../config/bad-samples"}, wantCode: 1,
			wantErr: []string{`did you mean "kubernetes-to-kubernetes"?`, `spec.config.namespace: Invalid value: "kube-system"`, "2 of 2 Tasks invalid"}},
		{name: "multi-document file, one invalid", args: []string{"validate", "-f", multi}, wantCode: 1,
			wantOut: []string{"Task shop/a is valid"}, wantErr: []string{"Task default/b is invalid", `spec.config.comand: Forbidden: unknown field "comand"; did you mean "command"?`, "spec.config.command: Required value"}},
		{name: "directory with other kinds", args: []string{"validate", "-f", mixed}, wantCode: 1, notWantOut: []string{"Deployment"}},
		{name: "stdin yaml output", args: []string{"validate", "-f", "-", "-o", "yaml"}, wantCode: 0,
			stdin:   "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}\n",
			wantOut: []string{"serviceAccountName: s-task", "namespace: default", "timeoutSeconds: 3600"}, notWantOut: []string{"status", "is valid"}},
		{name: "strict top level", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin:   "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugn: custom-image, config: {}}\n",
			wantErr: []string{`unknown field "spec.plugn"`}},
		{name: "negative ttl", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin:   "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugin: custom-image, ttlSecondsAfterFinished: -1, config: {image: busybox:1.36, command: [echo]}}\n",
			wantErr: []string{"spec.ttlSecondsAfterFinished: Invalid value: -1: should be greater than or equal to 0"}},
		{name: "ttl", args: []string{"validate", "-f", "-", "-o", "yaml"}, wantCode: 0,
			stdin:   "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugin: custom-image, ttlSecondsAfterFinished: 0, config: {image: busybox:1.36, command: [echo]}}\n",
			wantOut: []string{"ttlSecondsAfterFinished: 0"}},
		{name: "bad yaml", args: []string{"validate", "-f", "-"}, wantCode: 1, stdin: "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nspec: [\n", wantErr: []string{"not valid YAML"}},
		{name: "no Task in input", args: []string{"validate", "-f", notTask}, wantCode: 2, wantErr: []string{"no Task"}},
		{name: "no -f", args: []string{"validate"}, wantCode: 2, wantErr: []string{"Usage: taskgate validate"}},
		{name: "missing file", args: []string{"validate", "-f", "/nonexistent.yaml"}, wantCode: 2, wantErr: []string{"no such file"}},
		{name: "bad output", args: []string{"validate", "-f", multi, "-o", "json"}, wantCode: 2},
		{name: "allow-list enforced offline", args: []string{"validate", "-f", "../../config/samples/custom-image-kubectl.yaml", "--allowed-cluster-roles", "view,edit"}, wantCode: 1,
			wantErr: []string{`spec.config.clusterRole: Unsupported value: "cluster-admin"`}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: []string{`unknown command "frobnicate"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			for _, w := range tt.notWantOut {
				if strings.Contains(stdout.String(), w) {
					t.Errorf("stdout has %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}

func TestValidateYAMLOutputIsATask(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "-f", "../../config/samples/transformation-set-replica-to-1.yaml", "-o", "yaml"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var task v1alpha1.Task
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(stdout.Bytes(), []byte("---\n")), &task); err != nil {
		t.Fatalf("output is not a Task: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(string(task.Spec.Config.Raw), `"namespaces":["default"]`) {
		t.Errorf("defaulted namespaces missing: %s", task.Spec.Config.Raw)
	}
}

func TestSchemasCommand(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"schemas", dir}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, f := range []string{"custom-image.json", "kubernetes-object-transformation.json", "run-synchronization.json",
		"synchronization/kubernetes-to-kubernetes.json", "synchronization/kubernetes-to-bucket.json"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("missing %s: %v", f, err)
			continue
		}
		want, _ := os.ReadFile(filepath.Join("../../schemas", f))
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from schemas/%s", f, f)
		}
	}
	if code := run([]string{"schemas", "a", "b"}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("two dirs: exit %d, want 2", code)
	}
}

func TestManagerFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*managerFlags) bool
	}{
		{name: "both halves off", args: []string{"--enable-webhooks=false", "--enable-controller=false"}, wantErr: "nothing to run"},
		{name: "allow-list and leader election", args: []string{"--allowed-cluster-roles", "view, edit", "--leader-elect"},
			check: func(f *managerFlags) bool { return f.leaderElect && f.allowedClusterRoles == "view, edit" }},
		{name: "access review cache on by default",
			check: func(f *managerFlags) bool { return f.accessReviewCacheTTL == webhook.DefaultAccessReviewCacheTTL }},
		{name: "access review cache ttl", args: []string{"--access-review-cache-ttl=1m30s"},
			check: func(f *managerFlags) bool { return f.accessReviewCacheTTL == 90*time.Second }},
		{name: "access review cache off", args: []string{"--access-review-cache-ttl=0"},
			check: func(f *managerFlags) bool { return f.accessReviewCacheTTL == 0 }},
		{name: "negative ttl", args: []string{"--access-review-cache-ttl=-1s"}, wantErr: "positive duration"},
		{name: "finished tasks kept by default", check: func(f *managerFlags) bool { return f.finishedTaskTTL == 0 }},
		{name: "finished task ttl", args: []string{"--finished-task-ttl=24h"},
			check: func(f *managerFlags) bool { return f.finishedTaskTTL == 24*time.Hour }},
		{name: "negative finished task ttl", args: []string{"--finished-task-ttl=-1m"}, wantErr: "--finished-task-ttl=-1m0s: want 0"},
		{name: "finished task ttl not a duration", args: []string{"--finished-task-ttl=1d"}, wantErr: "invalid value"},
		{name: "single-call: no validating configuration to rotate", args: []string{"--cert-rotation", "--validating-webhook-configuration="},
			check: func(f *managerFlags) bool {
				w := rotatedWebhooks(f)
				return len(w) == 1 && w[0].Name == "taskgate-mutating" && w[0].Type == rotator.Mutating
			}},
		{name: "rotation into nothing", args: []string{"--cert-rotation", "--validating-webhook-configuration=", "--mutating-webhook-configuration="},
			wantErr: "inject the CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			f, err := parseManagerFlags(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(f) {
				t.Errorf("flags %+v, err %v", f, err)
			}
		})
	}
	if _, err := newLogger("xml", "info"); err == nil {
		t.Error("bad log format accepted")
	}
}

// `taskgate version` prints the version taskgate_build_info carries.
func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got, want := stdout.String(), "taskgate "+buildVersion()+"\n"; got != want || buildVersion() == "" {
		t.Errorf("version printed %q, want %q", got, want)
	}
}
