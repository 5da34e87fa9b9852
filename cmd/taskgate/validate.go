package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
	"github.com/astronetes/taskgate/webhook"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

const authzNote = "note: authorization checks (create pods, bind + create clusterrolebindings for a clusterRole; list/patch on transformation targets, escalate or bind for RBAC kinds; create synchronizations) and the preflight dry run need a cluster and were skipped"

// outputs are the -o values.
var outputs = []string{"text", "yaml", "json", "junit"}

// document is one YAML document of an input, with where it came from.
type document struct {
	source string
	// line is the first line of the document that is neither blank nor a
	// comment (1-based), where an editor should jump to.
	line int
	data []byte
}

// file names the input: its path, or <stdin>.
func (d document) file() string {
	if d.source == "-" {
		return "<stdin>"
	}
	return d.source
}

func (d document) String() string { return fmt.Sprintf("%s:%d", d.file(), d.line) }

// result is the verdict on one document.
type result struct {
	doc  document
	task *v1alpha1.Task // nil when the document was skipped, is not readable or is a TaskRun
	run  *v1alpha1.TaskRun
	// taskRef is the Task the run names (namespace/name), resolved
	// against the input's Tasks once every document is checked.
	taskRef  *client.ObjectKey
	errs     field.ErrorList
	warnings []string
	// skipped says why a document was not checked (it is not a Task).
	skipped string
}

func (r result) verdict() string {
	switch {
	case r.skipped != "":
		return "skipped"
	case len(r.errs) > 0:
		return "invalid"
	}
	return "valid"
}

// object is the Task or TaskRun the document holds (nil when skipped or
// not readable).
func (r result) object() client.Object {
	switch {
	case r.task != nil:
		return r.task
	case r.run != nil:
		return r.run
	}
	return nil
}

// meta is the metadata of the Task or TaskRun the document holds.
func (r result) meta() *metav1.ObjectMeta {
	if r.run != nil {
		return &r.run.ObjectMeta
	}
	return &r.task.ObjectMeta
}

// kind is the kind of the document's object: Task, TaskRun, or "" when it
// holds neither.
func (r result) kind() string {
	switch {
	case r.task != nil:
		return "Task"
	case r.run != nil:
		return "TaskRun"
	}
	return ""
}

// name names the Task or TaskRun as messages do: "Task namespace/name".
func (r result) name() string {
	o := r.object()
	switch {
	case o == nil:
		return "document"
	case o.GetName() == "" && o.GetGenerateName() != "":
		return fmt.Sprintf("%s %s/%s*", r.kind(), o.GetNamespace(), o.GetGenerateName())
	}
	return fmt.Sprintf("%s %s/%s", r.kind(), o.GetNamespace(), o.GetName())
}

const validateUsage = "Usage: taskgate validate -f FILE|DIR|- [-f ...] [-o text|yaml|json|junit]\n\n" +
	"Checks Tasks and TaskRuns as the API server and the admission webhook would and fills in their defaults.\n" +
	"A TaskRun's inline spec.taskSpec is checked as a Task's spec is (errors name spec.taskSpec.config...).\n" +
	"A TaskRun's spec.taskRef is resolved against the Tasks of the same input: the run is invalid when\n" +
	"that Task is; a Task that is not in the input leaves nothing to check offline (it is resolved at\n" +
	"admission), which a warning says.\n" +
	"Documents of other kinds (and Helm templates that are not YAML) are skipped with a note.\n" +
	"A summary line (valid, invalid, skipped) goes to standard error.\n" +
	"Exit status: 0 all valid, 1 some invalid, 2 usage or read errors or no Task or TaskRun in the input.\n"

func runValidate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fset := subcommandFlags("validate", validateUsage, stderr)
	var files stringList
	fset.Var(&files, "f", "file, directory (searched for *.yaml, *.yml, *.json) or - for standard input; repeatable")
	output := fset.String("o", "text", "output: text (a verdict per Task), yaml (the defaulted Tasks), json (every verdict with its field errors) or junit (a test case per Task, for CI)")
	syncDir := fset.String("sync-schema-dir", "", "directory of extra or overriding synchronization-plugin schemas")
	allowed := fset.String("allowed-cluster-roles", "", "comma-separated ClusterRoles Tasks may bind, as the installation enforces them")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if *output == "" {
		*output = "text"
	}
	if len(files) == 0 || fset.NArg() > 0 || !slices.Contains(outputs, *output) {
		fset.Usage()
		return 2
	}
	set, err := schemas.Load(*syncDir)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate validate:", err)
		return 2
	}
	a := webhook.NewAdmitter(set)
	a.AllowedClusterRoles = splitNames(*allowed)
	docs, err := readDocuments(files, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate validate:", err)
		return 2
	}
	var results []result
	for _, d := range docs {
		if r, ok := checkDocument(a, d); ok {
			results = append(results, r)
		}
	}
	resolveTaskRefs(results)
	s := summarize(results)
	if err := report(results, s, *output, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "taskgate validate:", err)
		return 2
	}
	fmt.Fprintln(stderr, authzNote)
	fmt.Fprintln(stderr, s)
	switch {
	case s.Valid+s.Invalid == 0:
		fmt.Fprintln(stderr, "taskgate validate: no Task or TaskRun ("+v1alpha1.GroupVersion.String()+") found in the input")
		return 2
	case s.Invalid > 0:
		return 1
	}
	return 0
}

// checkDocument checks one document as creating it would be checked: the
// API server's strict decoding, its metadata rules and the CRD's own
// schema outside spec.config, then the webhook's defaulting and
// validation. ok is false for an empty document, which is not reported.
func checkDocument(a *webhook.Admitter, d document) (r result, ok bool) {
	r = result{doc: d}
	dec := decodeDocument(d.data)
	switch {
	case dec.empty:
		return r, false
	case dec.skip != "":
		r.skipped = dec.skip
		return r, true
	}
	r.task, r.run, r.errs = dec.task, dec.run, dec.errs
	if !dec.decoded {
		return r, true
	}
	// The API server's own checks (the fields it knows, metadata, the
	// CRD's rules) come before admission's; as there, an object they
	// refuse goes no further, which also spares errors about defaults
	// derived from a bad name.
	if r.errs = append(r.errs, validateMeta(r.meta())...); len(r.errs) > 0 {
		return r, true
	}
	if r.run != nil {
		return checkTaskRun(a, r), true
	}
	if r.errs = a.Default(r.task); len(r.errs) == 0 {
		r.errs, r.warnings = a.Validate(r.task)
	}
	return r, true
}

// validateMeta checks metadata as the API server does for a namespaced
// custom resource, after it generated the name from generateName.
func validateMeta(objMeta *metav1.ObjectMeta) field.ErrorList {
	meta := objMeta.DeepCopy()
	generated := meta.Name == "" && meta.GenerateName != ""
	if generated {
		meta.Name = names.SimpleNameGenerator.GenerateName(meta.GenerateName)
	}
	errs := apivalidation.ValidateObjectMeta(meta, true, apivalidation.NameIsDNSSubdomain, metaPath)
	if !generated {
		return errs
	}
	// A bad generateName makes a bad name too; say it once, without the
	// random suffix, so the output is the same on every run.
	badPrefix := false
	for _, e := range errs {
		badPrefix = badPrefix || e.Field == metaPath.Child("generateName").String()
	}
	if !badPrefix {
		return errs
	}
	return errs.Filter(func(err error) bool {
		var fe *field.Error
		return errors.As(err, &fe) && fe.Field == metaPath.Child("name").String()
	})
}

var metaPath = field.NewPath("metadata")

var documentPath = field.NewPath("<document>")

// decoded is one document, decoded.
type decoded struct {
	task *v1alpha1.Task
	run  *v1alpha1.TaskRun
	errs field.ErrorList
	// decoded is true when task or run holds the document (perhaps less
	// unknown fields), so the checks of admission can run on it.
	decoded bool
	// skip says why a document that is not a Task or a TaskRun, or is a
	// template and not YAML, is not checked.
	skip string
	// empty is true for a document with nothing in it.
	empty bool
}

// decodeDocument decodes one document as the API server would: strictly,
// with the CRD's rules outside the plugin's config.
func decodeDocument(data []byte) decoded {
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		if bytes.Contains(data, []byte("{{")) {
			return decoded{skip: "not YAML but a template (Helm or Go); render it first, e.g. helm template CHART | taskgate validate -f -"}
		}
		return decoded{errs: field.ErrorList{field.Invalid(documentPath, field.OmitValueType{}, "not valid YAML: "+err.Error())}}
	}
	if len(bytes.TrimSpace(jsonData)) == 0 || string(jsonData) == "null" {
		return decoded{empty: true}
	}
	var head struct{ APIVersion, Kind string }
	if err := json.Unmarshal(jsonData, &head); err != nil {
		return decoded{skip: "not a Kubernetes object (not a YAML mapping)"}
	}
	if (head.Kind != "Task" && head.Kind != "TaskRun") || head.APIVersion != v1alpha1.GroupVersion.String() {
		what := strings.TrimSpace(head.APIVersion + " " + head.Kind)
		if what == "" {
			what = "a document without apiVersion and kind"
		}
		return decoded{skip: what + " is not a Task or TaskRun (" + v1alpha1.GroupVersion.String() + ")"}
	}
	if head.Kind == "TaskRun" {
		return decodeTaskRun(jsonData)
	}
	task := &v1alpha1.Task{}
	errs, ok := decodeStrict(jsonData, task)
	if !ok {
		return decoded{task: task, errs: errs}
	}
	// The CRD's own schema holds the rules of the spec outside
	// spec.config (the webhook's schemas cover spec.config only); the API
	// server enforces them, and so does this check, so "valid" here means
	// the API server stores the Task.
	spec := task.Spec
	errs = append(errs, notNegative(runSpecPath.Child("ttlSecondsAfterFinished"), spec.TTLSecondsAfterFinished)...)
	errs = append(errs, notNegative(runSpecPath.Child("successfulRunsHistoryLimit"), spec.SuccessfulRunsHistoryLimit)...)
	errs = append(errs, notNegative(runSpecPath.Child("failedRunsHistoryLimit"), spec.FailedRunsHistoryLimit)...)
	if p := spec.ConcurrencyPolicy; p != "" && p != v1alpha1.ConcurrencyAllow && p != v1alpha1.ConcurrencyForbid {
		errs = append(errs, field.NotSupported(runSpecPath.Child("concurrencyPolicy"), p, []v1alpha1.ConcurrencyPolicy{v1alpha1.ConcurrencyAllow, v1alpha1.ConcurrencyForbid}))
	}
	return decoded{task: task, errs: errs, decoded: true}
}

// notNegative is the CRD's minimum of 0 on an optional integer, in the
// API server's words.
func notNegative(path *field.Path, v *int32) field.ErrorList {
	if v == nil || *v >= 0 {
		return nil
	}
	return field.ErrorList{field.Invalid(path, *v, "should be greater than or equal to 0")}
}

// decodeStrict decodes a Task or TaskRun strictly, as kubectl's
// server-side field validation would, in namespace default unless it
// names one. ok is false when the document does not decode at all.
func decodeStrict(jsonData []byte, obj client.Object) (errs field.ErrorList, ok bool) {
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, obj)
	if obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	if err != nil {
		return field.ErrorList{field.Invalid(documentPath, field.OmitValueType{}, err.Error())}, false
	}
	for _, e := range strictErrs {
		errs = append(errs, field.Invalid(documentPath, field.OmitValueType{}, e.Error()))
	}
	return errs, true
}
