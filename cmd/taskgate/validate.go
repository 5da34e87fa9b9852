package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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

// document is one YAML document of an input, with where it came from.
type document struct {
	source string
	index  int
	data   []byte
}

func (d document) String() string {
	if d.index == 0 {
		return d.source
	}
	return fmt.Sprintf("%s#%d", d.source, d.index+1)
}

func runValidate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("validate", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var files stringList
	fset.Var(&files, "f", "file, directory (searched for *.yaml, *.yml, *.json) or - for standard input; repeatable")
	output := fset.String("o", "", "output: empty for a verdict per Task, yaml to print the defaulted Tasks")
	syncDir := fset.String("sync-schema-dir", "", "directory of extra or overriding synchronization-plugin schemas")
	allowed := fset.String("allowed-cluster-roles", "", "comma-separated ClusterRoles Tasks may bind, as the installation enforces them")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "Usage: taskgate validate -f FILE|DIR|- [-f ...] [-o yaml]\n\nChecks Tasks as the admission webhook would and fills in their defaults.\nExit status: 0 all valid, 1 some invalid, 2 usage or read errors.")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if len(files) == 0 || fset.NArg() > 0 || (*output != "" && *output != "yaml") {
		fset.Usage()
		return 2
	}
	set, err := schemas.Load(*syncDir)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate validate:", err)
		return 2
	}
	a := webhook.NewAdmitter(set)
	if *allowed != "" {
		a.AllowedClusterRoles = strings.Split(*allowed, ",")
	}
	docs, err := readDocuments(files, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate validate:", err)
		return 2
	}
	tasks, invalid := 0, 0
	for _, d := range docs {
		task, errs, skip := decodeTask(d.data)
		if skip {
			continue
		}
		tasks++
		var warnings []string
		if len(errs) == 0 {
			errs = a.Default(task)
		}
		if len(errs) == 0 {
			errs, warnings = a.Validate(task)
		}
		report(d, task, errs, warnings, *output == "yaml", stdout, stderr)
		if len(errs) > 0 {
			invalid++
		}
	}
	if tasks == 0 {
		fmt.Fprintln(stderr, "taskgate validate: no Task (automation.astronetes.io/v1alpha1) found in the input")
		return 2
	}
	fmt.Fprintln(stderr, authzNote)
	if invalid > 0 {
		fmt.Fprintf(stderr, "%d of %d Tasks invalid\n", invalid, tasks)
		return 1
	}
	return 0
}

func report(d document, task *v1alpha1.Task, errs field.ErrorList, warnings []string, asYAML bool, stdout, stderr io.Writer) {
	name := fmt.Sprintf("Task %s/%s", task.Namespace, task.Name)
	if task.Name == "" {
		name = fmt.Sprintf("Task %s/%s*", task.Namespace, task.GenerateName)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s: %s: warning: %s\n", d, name, w)
	}
	switch {
	case len(errs) > 0:
		fmt.Fprintf(stderr, "%s: %s is invalid:\n", d, name)
		for _, e := range errs {
			fmt.Fprintf(stderr, "  * %s\n", e.Error())
		}
	case asYAML:
		out, err := yaml.Marshal(printable(task))
		if err != nil {
			fmt.Fprintf(stderr, "%s: %s: encode: %v\n", d, name, err)
			return
		}
		fmt.Fprintf(stdout, "---\n%s", out)
	default:
		fmt.Fprintf(stdout, "%s: %s is valid\n", d, name)
	}
}

// printable drops the empty status and creation timestamp a Go struct would print.
func printable(task *v1alpha1.Task) map[string]any {
	raw, _ := json.Marshal(task)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return m
}

// decodeTask decodes one document. skip is true for an empty document or
// one that is not a Task (so a folder of mixed manifests can be checked).
func decodeTask(data []byte) (task *v1alpha1.Task, errs field.ErrorList, skip bool) {
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		return &v1alpha1.Task{}, field.ErrorList{field.Invalid(field.NewPath("<document>"), field.OmitValueType{}, "not valid YAML: "+err.Error())}, false
	}
	if len(bytes.TrimSpace(jsonData)) == 0 || string(jsonData) == "null" {
		return nil, nil, true
	}
	var head struct{ APIVersion, Kind string }
	if err := json.Unmarshal(jsonData, &head); err != nil {
		return &v1alpha1.Task{}, field.ErrorList{field.Invalid(field.NewPath("<document>"), field.OmitValueType{}, "not an object: "+err.Error())}, false
	}
	if head.Kind != "Task" || head.APIVersion != v1alpha1.GroupVersion.String() {
		return nil, nil, true
	}
	task = &v1alpha1.Task{}
	// Strict, as kubectl's server-side field validation would be.
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, task)
	if task.Namespace == "" {
		task.Namespace = "default"
	}
	if err != nil {
		return task, field.ErrorList{field.Invalid(field.NewPath("<document>"), field.OmitValueType{}, err.Error())}, false
	}
	for _, e := range strictErrs {
		errs = append(errs, field.Invalid(field.NewPath("<document>"), field.OmitValueType{}, e.Error()))
	}
	// The CRD's own schema holds the rules of the spec outside
	// spec.config (the webhook's schemas cover spec.config only); the API
	// server enforces them, and so does this check, so "valid" here means
	// the API server stores the Task.
	if ttl := task.Spec.TTLSecondsAfterFinished; ttl != nil && *ttl < 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "ttlSecondsAfterFinished"), *ttl, "should be greater than or equal to 0"))
	}
	return task, errs, false
}

func readDocuments(inputs []string, stdin io.Reader) ([]document, error) {
	var docs []document
	for _, in := range inputs {
		paths, err := expand(in)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			var r io.Reader = stdin
			if p != "-" {
				f, err := os.Open(p)
				if err != nil {
					return nil, err
				}
				defer f.Close()
				r = f
			}
			yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
			for i := 0; ; i++ {
				data, err := yr.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, fmt.Errorf("read %s: %w", p, err)
				}
				docs = append(docs, document{source: p, index: i, data: data})
			}
		}
	}
	return docs, nil
}

// expand turns a directory into its manifest files, sorted.
func expand(in string) ([]string, error) {
	if in == "-" {
		return []string{"-"}, nil
	}
	info, err := os.Stat(in)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{in}, nil
	}
	var out []string
	err = filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				out = append(out, p)
			}
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
