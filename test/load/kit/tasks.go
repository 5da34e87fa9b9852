package kit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// Samples reads the seed samples of root/config/samples, sorted by file name.
func Samples(root string) ([]*v1alpha1.Task, error) {
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no samples in %s/config/samples: %v", root, err)
	}
	sort.Strings(files)
	var out []*v1alpha1.Task
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		t := &v1alpha1.Task{}
		if err := yaml.UnmarshalStrict(data, t); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// NewTask is a copy of sample named name in ns.
func NewTask(sample *v1alpha1.Task, ns, name string) *v1alpha1.Task {
	t := &v1alpha1.Task{Spec: *sample.Spec.DeepCopy()}
	t.Name, t.Namespace = name, ns
	return t
}

// NewTaskRun is a TaskRun of Task task in ns, named name, or named by the
// API server after the Task ("<task>-") when name is "", as `taskgate run`
// names it.
func NewTaskRun(ns, name, task string) *v1alpha1.TaskRun {
	r := &v1alpha1.TaskRun{Spec: v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: task}}}
	r.Namespace, r.Name = ns, name
	if name == "" {
		r.GenerateName = task + "-"
	}
	return r
}

// Admitted is a TaskRun of task named name as taskgate's webhooks admit
// one created by requester: the Task's spec as its snapshot, the requester,
// the Task's label and its controller owner reference. For tests that run
// without the webhooks.
func Admitted(task *v1alpha1.Task, name string, requester *v1alpha1.Requester) *v1alpha1.TaskRun {
	run := NewTaskRun(task.Namespace, name, task.Name)
	run.Spec.TaskSpec = task.Spec.PluginSpec.DeepCopy()
	run.Spec.Requester = requester.DeepCopy()
	run.Labels = map[string]string{v1alpha1.TaskLabel: v1alpha1.TaskLabelValue(task.Name)}
	run.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Task",
		Name: task.Name, UID: task.UID, Controller: ptr.To(true)}}
	return run
}

// NewInlineRun is a one-off TaskRun of spec in ns, named name (generated,
// "run-", when "").
func NewInlineRun(ns, name string, spec *v1alpha1.PluginSpec) *v1alpha1.TaskRun {
	r := &v1alpha1.TaskRun{Spec: v1alpha1.TaskRunSpec{TaskSpec: spec.DeepCopy()}}
	r.Namespace, r.Name = ns, name
	if name == "" {
		r.GenerateName = "run-"
	}
	return r
}

// RawResult is the API server's answer to a raw request.
type RawResult struct {
	Code   int
	Status *metav1.Status // nil when the answer was not a Status
	Body   []byte
}

// Causes lists the fields the Status names.
func (r RawResult) Causes() []string {
	if r.Status == nil || r.Status.Details == nil {
		return nil
	}
	var out []string
	for _, c := range r.Status.Details.Causes {
		out = append(out, c.Field)
	}
	return out
}

// Names reports whether the answer names field, in a cause or the message.
func (r RawResult) Names(field string) bool {
	if slices.Contains(r.Causes(), field) {
		return true
	}
	return r.Status != nil && bytes.Contains([]byte(r.Status.Message), []byte(field))
}

// RawClient sends hand-made request bodies to the API server, bytes as they
// are (client-go would re-encode them, fixing what the tests want broken).
type RawClient struct {
	host string
	hc   *http.Client
}

// NewRawClient talks to the API server of cfg as its user.
func NewRawClient(cfg *rest.Config) (*RawClient, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	hc.Timeout = 60 * time.Second
	return &RawClient{host: strings.TrimSuffix(cfg.Host, "/"), hc: hc}, nil
}

// CreateTask POSTs body as a Task in ns.
func (c *RawClient) CreateTask(ctx context.Context, ns string, body []byte) (RawResult, error) {
	return c.create(ctx, ns, "tasks", body)
}

// CreateTaskRun POSTs body as a TaskRun in ns.
func (c *RawClient) CreateTaskRun(ctx context.Context, ns string, body []byte) (RawResult, error) {
	return c.create(ctx, ns, "taskruns", body)
}

func (c *RawClient) create(ctx context.Context, ns, resource string, body []byte) (RawResult, error) {
	url := fmt.Sprintf("%s/apis/%s/namespaces/%s/%s", c.host, v1alpha1.GroupVersion.String(), ns, resource)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return RawResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return RawResult{}, err
	}
	defer resp.Body.Close()
	out := RawResult{Code: resp.StatusCode}
	if out.Body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil {
		return out, err
	}
	var st metav1.Status
	if json.Unmarshal(out.Body, &st) == nil && st.Kind == "Status" {
		out.Status = &st
	}
	return out, nil
}

// TaskJSON is a Task document with config as raw JSON bytes.
func TaskJSON(name string, plugin v1alpha1.Plugin, config []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"apiVersion":%q,"kind":"Task","metadata":{"name":%q},"spec":{"plugin":%q,"config":`,
		v1alpha1.GroupVersion.String(), name, plugin)
	b.Write(config)
	b.WriteString("}}")
	return b.Bytes()
}
