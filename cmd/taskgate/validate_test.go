package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
	"github.com/astronetes/taskgate/webhook"
)

const helmTemplate = `{{- if .Values.task.enabled }}
apiVersion: automation.astronetes.io/v1alpha1
kind: Task
metadata:
  name: {{ include "x.fullname" . }}
spec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}
{{- end }}
`

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
	multi := write("multi.yaml", `# two Tasks
apiVersion: automation.astronetes.io/v1alpha1
kind: Task
metadata: {name: a, namespace: shop}
spec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}
---
# the second one has a typo

apiVersion: automation.astronetes.io/v1alpha1
kind: Task
metadata: {name: b}
spec: {plugin: custom-image, config: {image: busybox:1.36, comand: [echo]}}
`)
	notTask := filepath.Join(t.TempDir(), "only-deploy.yaml")
	if err := os.WriteFile(notTask, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	helmDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(helmDir, "task.yaml"), []byte(helmTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(helmDir, "ok.yaml"), []byte("apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: ok}\nspec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	task := func(meta string) string {
		return "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: " + meta + "\nspec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}\n"
	}
	tests := []validateCase{
		{name: "samples valid", args: []string{"validate", "-f", "../../config/samples"}, wantCode: 0,
			wantOut: []string{"run-synchronization.yaml:3: Task default/restore-from-dr is valid", "custom-image-hello-world.yaml:2: Task default/hello-world is valid"},
			wantErr: []string{"authorization checks", "were skipped", `"busybox" has no tag`, "summary: 4 valid, 0 invalid, 0 skipped"}},
		{name: "bad samples invalid", args: []string{"validate", "-f", "../../config/bad-samples"}, wantCode: 1,
			wantErr: []string{"typo-sync-plugin.yaml:2: Task default/typo-sync-plugin is invalid", `did you mean "kubernetes-to-kubernetes"?`,
				`spec.config.namespace: Invalid value: "kube-system"`, "summary: 0 valid, 2 invalid, 0 skipped"}},
		{name: "multi-document file, one invalid, lines of each", args: []string{"validate", "-f", multi}, wantCode: 1,
			wantOut: []string{"multi.yaml:2: Task shop/a is valid"},
			wantErr: []string{"multi.yaml:9: Task default/b is invalid", `spec.config.comand: Forbidden: unknown field "comand"; did you mean "command"?`,
				"spec.config.command: Required value", "summary: 1 valid, 1 invalid, 0 skipped"}},
		{name: "directory with other kinds: skipped with a note", args: []string{"validate", "-f", mixed}, wantCode: 1, notWantOut: []string{"Deployment"},
			wantErr: []string{"deploy.yaml:1: skipped: apps/v1 Deployment is not a Task", "summary: 1 valid, 1 invalid, 1 skipped"}},
		{name: "helm template skipped, not invalid", args: []string{"validate", "-f", helmDir}, wantCode: 0,
			wantOut: []string{"ok.yaml:1: Task default/ok is valid"},
			wantErr: []string{"task.yaml:1: skipped: not YAML but a template", "helm template", "summary: 1 valid, 0 invalid, 1 skipped"}},
		{name: "only a helm template: no Task", args: []string{"validate", "-f", filepath.Join(helmDir, "task.yaml")}, wantCode: 2,
			wantErr: []string{"summary: 0 valid, 0 invalid, 1 skipped", "no Task"}},
		{name: "stdin yaml output", args: []string{"validate", "-f", "-", "-o", "yaml"}, wantCode: 0,
			stdin:   task("{name: s}"),
			wantOut: []string{"namespace: default", "timeoutSeconds: 3600"}, notWantOut: []string{"status", "is valid", "serviceAccountName"},
			wantErr: []string{"summary: 1 valid, 0 invalid, 0 skipped"}},
		{name: "stdin is named in messages", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: task("{name: Bad_Name}"), wantErr: []string{`<stdin>:1: Task default/Bad_Name is invalid`, `metadata.name: Invalid value: "Bad_Name"`}},
		{name: "generateName as the API server reads it", args: []string{"validate", "-f", "-"}, wantCode: 0,
			stdin: task("{generateName: nightly-}"), wantOut: []string{"Task default/nightly-* is valid"}},
		{name: "bad generateName said once", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: task("{generateName: Nightly-}"), wantErr: []string{`metadata.generateName: Invalid value: "Nightly-"`}, notWantErr: []string{"metadata.name:"}},
		{name: "namespace is a DNS label", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: task("{name: a, namespace: team.a}"), wantErr: []string{`metadata.namespace: Invalid value: "team.a"`}},
		{name: "name or generateName required", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: task("{labels: {a: b}}"), wantErr: []string{"metadata.name: Required value: name or generateName is required"}},
		{name: "strict top level", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin:   "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugn: custom-image, config: {}}\n",
			wantErr: []string{`unknown field "spec.plugn"`}},
		{name: "the API server's errors together, before admission's", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin:      "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: Bad_Name}\nspec: {plugin: custom-image, ttlSecondsAfterFinished: -1, extra: 1, config: {comand: [echo]}}\n",
			wantErr:    []string{`unknown field "spec.extra"`, `metadata.name: Invalid value: "Bad_Name"`, "spec.ttlSecondsAfterFinished: Invalid value: -1"},
			notWantErr: []string{"spec.config"}},
		{name: "negative ttl", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin:   "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugin: custom-image, ttlSecondsAfterFinished: -1, config: {image: busybox:1.36, command: [echo]}}\n",
			wantErr: []string{"spec.ttlSecondsAfterFinished: Invalid value: -1: should be greater than or equal to 0"}},
		{name: "ttl", args: []string{"validate", "-f", "-", "-o", "yaml"}, wantCode: 0,
			stdin:   "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugin: custom-image, ttlSecondsAfterFinished: 0, config: {image: busybox:1.36, command: [echo]}}\n",
			wantOut: []string{"ttlSecondsAfterFinished: 0"}},
		{name: "bad yaml without template actions is invalid", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nspec: [\n", wantErr: []string{"<stdin>:1: document is invalid", "not valid YAML", "summary: 0 valid, 1 invalid, 0 skipped"}},
		{name: "a YAML list is skipped", args: []string{"validate", "-f", "-"}, wantCode: 2,
			stdin: "- a\n- b\n", wantErr: []string{"skipped: not a Kubernetes object", "no Task"}},
		{name: "no Task in input", args: []string{"validate", "-f", notTask}, wantCode: 2,
			wantErr: []string{"skipped: v1 ConfigMap is not a Task", "summary: 0 valid, 0 invalid, 1 skipped", "no Task"}},
		{name: "no -f", args: []string{"validate"}, wantCode: 2, wantErr: []string{"Usage: taskgate validate"}},
		{name: "missing file", args: []string{"validate", "-f", "/nonexistent.yaml"}, wantCode: 2, wantErr: []string{"no such file"}},
		{name: "bad output", args: []string{"validate", "-f", multi, "-o", "xml"}, wantCode: 2, wantErr: []string{"text|yaml|json|junit"}},
		{name: "text output named", args: []string{"validate", "-f", multi, "-o", "text"}, wantCode: 1, wantOut: []string{"Task shop/a is valid"}},
		{name: "allow-list enforced offline", args: []string{"validate", "-f", "../../config/samples/custom-image-kubectl.yaml", "--allowed-cluster-roles", "view,edit"}, wantCode: 1,
			wantErr: []string{`spec.config.clusterRole: Unsupported value: "cluster-admin"`}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: []string{`unknown command "frobnicate"`}},
	}
	checkValidateCases(t, tests)
}

// validateCase is a run of `taskgate validate` and what it must print.
type validateCase struct {
	name       string
	args       []string
	stdin      string
	wantCode   int
	wantOut    []string
	wantErr    []string
	notWantOut []string
	notWantErr []string
}

func checkValidateCases(t *testing.T, tests []validateCase) {
	t.Helper()
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
			for _, w := range tt.notWantErr {
				if strings.Contains(stderr.String(), w) {
					t.Errorf("stderr has %q:\n%s", w, stderr.String())
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

// mixedInput is the input of the machine-readable output tests: a valid
// Task, an invalid one, a Deployment and a Helm template.
func mixedInput(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"a-tasks.yaml": "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: good, namespace: shop}\n" +
			"spec: {plugin: custom-image, config: {image: busybox, command: [echo]}}\n---\n" +
			"apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: Bad_Name}\n" +
			"spec: {plugin: custom-image, config: {image: busybox:1.36, comand: [echo]}}\n",
		"b-deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
		"c-chart.yaml":  helmTemplate,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidateJSONOutput(t *testing.T) {
	dir := mixedInput(t)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "-f", dir, "-o", "json"}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	var got jsonReport
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	if want := (summary{Valid: 1, Invalid: 1, Skipped: 2}); got.Summary != want {
		t.Errorf("summary %+v, want %+v", got.Summary, want)
	}
	if !strings.Contains(stderr.String(), "summary: 1 valid, 1 invalid, 2 skipped") {
		t.Errorf("no summary line on stderr:\n%s", stderr.String())
	}
	tests := []struct {
		name, file, verdict, kind string
		line                      int
		fields                    []string
		warning, skipped          string
	}{
		{name: "good", kind: "Task", file: "a-tasks.yaml", line: 1, verdict: "valid", warning: `"busybox" has no tag`},
		{name: "Bad_Name", kind: "Task", file: "a-tasks.yaml", line: 6, verdict: "invalid", fields: []string{"metadata.name"}},
		{file: "b-deploy.yaml", line: 1, verdict: "skipped", skipped: "apps/v1 Deployment is not a Task"},
		{file: "c-chart.yaml", line: 1, verdict: "skipped", skipped: "not YAML but a template"},
	}
	if len(got.Results) != len(tests) {
		t.Fatalf("%d results, want %d: %+v", len(got.Results), len(tests), got.Results)
	}
	for i, tt := range tests {
		r := got.Results[i]
		t.Run(tt.file+"/"+tt.verdict, func(t *testing.T) {
			if filepath.Base(r.Source) != tt.file || r.Line != tt.line || r.Verdict != tt.verdict || r.Name != tt.name || r.Kind != tt.kind {
				t.Errorf("result %+v, want %s:%d %s %s %s", r, tt.file, tt.line, tt.kind, tt.name, tt.verdict)
			}
			var fields []string
			for _, e := range r.Errors {
				fields = append(fields, e.Field)
				if e.Reason == "" || !strings.HasPrefix(e.Message, e.Field+": ") {
					t.Errorf("error %+v lacks a reason or a message naming its field", e)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("error fields %v, want %v", fields, tt.fields)
			}
			if tt.warning != "" && (len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], tt.warning)) {
				t.Errorf("warnings %v, want one with %q", r.Warnings, tt.warning)
			}
			if !strings.Contains(r.Skipped, tt.skipped) || (tt.skipped == "") != (r.Skipped == "") {
				t.Errorf("skipped %q, want %q", r.Skipped, tt.skipped)
			}
		})
	}
}

func TestValidateJUnitOutput(t *testing.T) {
	dir := mixedInput(t)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "-f", dir, "-o", "junit"}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "<?xml") {
		t.Errorf("no XML header:\n%s", stdout.String())
	}
	var got junitSuites
	if err := xml.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not JUnit XML: %v\n%s", err, stdout.String())
	}
	if got.Tests != 4 || got.Failures != 1 || got.Skipped != 2 || len(got.Suites) != 3 {
		t.Fatalf("suites: %d tests, %d failures, %d skipped in %d suites; want 4, 1, 2 in 3:\n%s",
			got.Tests, got.Failures, got.Skipped, len(got.Suites), stdout.String())
	}
	tasks := got.Suites[0]
	if filepath.Base(tasks.Name) != "a-tasks.yaml" || tasks.Tests != 2 || tasks.Failures != 1 || len(tasks.Cases) != 2 {
		t.Fatalf("first suite %+v, want a-tasks.yaml with 2 cases, 1 failure", tasks)
	}
	good, bad := tasks.Cases[0], tasks.Cases[1]
	if !strings.HasPrefix(good.Name, "Task shop/good (") || good.Failure != nil || !strings.Contains(good.SystemOut, "warning:") {
		t.Errorf("valid case %+v", good)
	}
	if bad.Failure == nil || !strings.HasSuffix(bad.Name, "a-tasks.yaml:6)") ||
		!strings.Contains(bad.Failure.Text, `metadata.name: Invalid value: "Bad_Name"`) {
		t.Errorf("invalid case %+v: want a failure naming metadata.name at line 6", bad)
	}
	for _, s := range got.Suites[1:] {
		if len(s.Cases) != 1 || s.Cases[0].Skipped == nil || s.Cases[0].Skipped.Message == "" || s.Skipped != 1 {
			t.Errorf("suite %s: want one skipped case with a reason, got %+v", s.Name, s)
		}
	}
}

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		lines []int
	}{
		{name: "one document", in: "a: 1\n", lines: []int{1}},
		{name: "leading separator and comments", in: "---\n# c\n\na: 1\n---\nb: 2\n", lines: []int{4, 6}},
		{name: "separator with a comment", in: "a: 1\n--- # next\nb: 2", lines: []int{1, 3}},
		{name: "not a separator", in: "a: |\n  ---x\n---- \nb: 1\n", lines: []int{1}},
		{name: "empty documents kept for the checker to drop", in: "a: 1\n---\n---\n", lines: []int{1}},
		{name: "only comments", in: "# c\n", lines: []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := splitDocuments("f", strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var lines []int
			for _, d := range docs {
				lines = append(lines, d.line)
			}
			if len(lines) != len(tt.lines) {
				t.Fatalf("lines %v, want %v", lines, tt.lines)
			}
			for i := range lines {
				if lines[i] != tt.lines[i] {
					t.Errorf("lines %v, want %v", lines, tt.lines)
				}
			}
		})
	}
}

// TestValidateMetadataCases runs testdata/metadata/{valid,invalid}: each
// invalid case carries the errors it must produce in "# want:" lines.
// (TestTaskSchemaGivesTheWebhooksVerdict holds task.json to the same cases.)
func TestValidateMetadataCases(t *testing.T) {
	a := testAdmitter(t)
	files, err := filepath.Glob("testdata/metadata/*/*.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("test cases: %v, %v", files, err)
	}
	for _, file := range files {
		t.Run(strings.TrimPrefix(filepath.ToSlash(file), "testdata/metadata/"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			r, ok := checkDocument(a, document{source: file, line: 1, data: data})
			if !ok || r.task == nil {
				t.Fatalf("not a Task: %+v", r)
			}
			got := r.errs.ToAggregate()
			if strings.Contains(file, "/valid/") {
				if got != nil {
					t.Fatalf("want valid, got: %v", got)
				}
				return
			}
			var wants []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 || got == nil {
				t.Fatalf("want errors %q, got %v", wants, got)
			}
			for _, w := range wants {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("want an error containing\n  %s\ngot\n  %v", w, got)
				}
			}
		})
	}
}

func testAdmitter(t *testing.T) *webhook.Admitter {
	t.Helper()
	set, err := schemas.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return webhook.NewAdmitter(set)
}
