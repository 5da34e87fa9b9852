package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/schemas"
	"github.com/astronetes/taskgate/webhook"
)

func TestSchemasCommand(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"schemas", dir}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// Written as they are embedded, $id included (it is each file's path).
	for _, f := range []string{"custom-image.json", "kubernetes-object-transformation.json",
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
	for _, f := range []string{"task.json", "taskrun.json", "run-synchronization.json"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Contains(got, []byte(`"$ref": "synchronization/kubernetes-to-kubernetes.json"`)) && f == "run-synchronization.json" {
			t.Errorf("%s: %v; want it written, dispatching to the synchronization schemas", f, err)
		}
		if !strings.Contains(stdout.String(), filepath.Join(dir, f)) {
			t.Errorf("%s not listed in the output:\n%s", f, stdout.String())
		}
	}
	if code := run([]string{"schemas", "a", "b"}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("two dirs: exit %d, want 2", code)
	}
}

// offlineCompiler compiles schemas from dir only: a reference to anything
// else (http, https, another directory) fails the test.
func offlineCompiler(t *testing.T, dir string) *jsonschema.Compiler {
	t.Helper()
	root, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.LoadURL = func(s string) (io.ReadCloser, error) {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "file" || !strings.HasPrefix(filepath.Clean(u.Path), root+string(filepath.Separator)) {
			t.Errorf("schema load of %s refused: only files under %s may be read", s, root)
			return nil, fmt.Errorf("refused: %s is not a file of the bundle", s)
		}
		return os.Open(u.Path)
	}
	return c
}

// undecided are the test cases the webhook refuses for a rule task.json
// cannot state (see schemas.TaskSchemaUndecided); the test holds each to
// that: the webhook refuses it, task.json accepts it.
var undecided = map[string]string{
	"schemas/testdata/custom-image/invalid/other-namespace.yaml": "spec.config.namespace must equal the Task's namespace",
}

// TestTaskSchemaGivesTheWebhooksVerdict writes the bundle with `taskgate
// schemas`, compiles task.json and taskrun.json from those files with no
// network, and holds their verdicts to taskgate validate's (the API
// server's checks and the webhook's admission) on every schema test case
// and sample: as a Task, and as a TaskRun carrying the same spec inline.
func TestTaskSchemaGivesTheWebhooksVerdict(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"schemas", dir}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("taskgate schemas: exit %d: %s", code, stderr.String())
	}
	compile := func(file string) *jsonschema.Schema {
		abs, _ := filepath.Abs(filepath.Join(dir, file))
		s, err := offlineCompiler(t, dir).Compile((&url.URL{Scheme: "file", Path: abs}).String())
		if err != nil {
			t.Fatalf("compile %s offline: %v", file, err)
		}
		return s
	}
	taskSchema, taskRunSchema := compile("task.json"), compile("taskrun.json")
	set, err := schemas.Load("")
	if err != nil {
		t.Fatal(err)
	}
	a := webhook.NewAdmitter(set)
	var files []string
	for _, g := range []string{"../../schemas/testdata/*/*/*.yaml", "../../config/samples/*.yaml", "../../config/bad-samples/*.yaml", "testdata/metadata/*/*.yaml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	if len(files) < 60 {
		t.Fatalf("only %d test cases found", len(files))
	}
	sort.Strings(files)
	seen := map[string]bool{}
	for _, file := range files {
		name := strings.TrimPrefix(filepath.ToSlash(file), "../../")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wantInvalid := strings.Contains(name, "/invalid/") || strings.Contains(name, "bad-samples/")
			for _, c := range []struct {
				schema *jsonschema.Schema
				file   string
				data   []byte
			}{{taskSchema, "task.json", data}, {taskRunSchema, "taskrun.json", asTaskRun(t, data)}} {
				r, ok := checkDocument(a, document{source: file, line: 1, data: c.data})
				if !ok || r.verdict() == "skipped" {
					t.Fatalf("not a Task or TaskRun: %+v", r)
				}
				webhookValid := r.verdict() == "valid"
				if wantInvalid == webhookValid {
					t.Fatalf("%s: the case's folder says otherwise than taskgate validate (valid=%v): %v", r.kind(), webhookValid, r.errs)
				}
				schemaErr := c.schema.Validate(instance(t, c.data))
				schemaValid := schemaErr == nil
				if reason, listed := undecided[name]; listed {
					seen[name] = true
					if webhookValid || !schemaValid {
						t.Fatalf("listed as undecided by %s (%s), but webhook valid=%v, %s valid=%v (%v): remove it from the list",
							c.file, reason, webhookValid, c.file, schemaValid, schemaErr)
					}
					continue
				}
				if schemaValid != webhookValid {
					t.Errorf("%s valid=%v, webhook valid=%v\nwebhook: %v\n%s: %v", c.file, schemaValid, webhookValid, r.errs, c.file, schemaErr)
				}
			}
		})
	}
	for name := range undecided {
		if !seen[name] {
			t.Errorf("undecided case %s not found", name)
		}
	}
}

// asTaskRun is the Task document data as a TaskRun that carries its spec
// inline (spec.taskSpec), keeping the run's own spec fields
// (ttlSecondsAfterFinished) in the run's spec.
func asTaskRun(t *testing.T, data []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	spec, _ := doc["spec"].(map[string]any)
	runSpec := map[string]any{"taskSpec": spec}
	if ttl, ok := spec["ttlSecondsAfterFinished"]; ok {
		runSpec["ttlSecondsAfterFinished"] = ttl
		delete(spec, "ttlSecondsAfterFinished")
	}
	doc["kind"], doc["spec"] = "TaskRun", runSpec
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// instance decodes a YAML document as a JSON Schema validator sees it.
func instance(t *testing.T, data []byte) any {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
