package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// The chart names a release's configurations <release>-mutating and
// <release>-validating; make run's must never be those of a release called
// taskgate.
func TestLoadWebhooks(t *testing.T) {
	for _, tc := range []struct {
		file                    string
		wantMutating, wantValid []string
		wantPaths               []string
	}{
		{
			file:         "../../config/webhook/manifests.yaml",
			wantMutating: []string{"taskgate-local-mutating"},
			wantValid:    []string{"taskgate-local-validating"},
			wantPaths: []string{"mutate-automation-astronetes-io-v1alpha1-task", "mutate-automation-astronetes-io-v1alpha1-taskrun",
				"validate-automation-astronetes-io-v1alpha1-task", "validate-automation-astronetes-io-v1alpha1-taskrun"},
		},
		{
			file:         "../../config/webhook-single-call/manifests.yaml",
			wantMutating: []string{"taskgate-local-mutating"},
			wantPaths:    []string{"admit-automation-astronetes-io-v1alpha1-task", "admit-automation-astronetes-io-v1alpha1-taskrun"},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m, v, err := loadWebhooks(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			var names, paths []string
			for _, w := range m {
				names = append(names, w.Name)
				for _, h := range w.Webhooks {
					paths = append(paths, *h.ClientConfig.Service.Path)
					if h.ClientConfig.URL != nil || h.ClientConfig.CABundle != nil {
						t.Errorf("%s: url or caBundle set before envtest writes them", w.Name)
					}
				}
			}
			if got, want := strings.Join(names, ","), strings.Join(tc.wantMutating, ","); got != want {
				t.Errorf("mutating names %q, want %q", got, want)
			}
			names = nil
			for _, w := range v {
				names = append(names, w.Name)
				for _, h := range w.Webhooks {
					paths = append(paths, *h.ClientConfig.Service.Path)
				}
			}
			if got, want := strings.Join(names, ","), strings.Join(tc.wantValid, ","); got != want {
				t.Errorf("validating names %q, want %q", got, want)
			}
			if got, want := strings.Join(paths, ","), strings.Join(tc.wantPaths, ","); got != want {
				t.Errorf("paths %q, want %q (no leading slash: envtest adds one)", got, want)
			}
		})
	}
}

func TestLoadWebhooksRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"not a webhook": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
		"url, no path":  "kind: ValidatingWebhookConfiguration\nmetadata:\n  name: taskgate-validating\nwebhooks:\n- name: v.x.io\n  clientConfig:\n    url: https://example.com/x\n",
		"unknown field": "kind: MutatingWebhookConfiguration\nmetadata:\n  name: m\nwebhooks:\n- name: m.x.io\n  clientConfg: {}\n",
		"nothing":       "# only a comment\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.yaml")
			if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := loadWebhooks(path); err == nil {
				t.Errorf("loadWebhooks accepted %q", doc)
			} else if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// The output says how long a Task's Pod runs; the Stage decides it.
func TestKwokStages(t *testing.T) {
	r := utilyaml.NewYAMLReader(bufioReader(kwokStages))
	stages := map[string]map[string]any{}
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		var s struct {
			APIVersion string
			Kind       string
			Metadata   struct{ Name string }
			Spec       map[string]any
		}
		if err := yaml.UnmarshalStrict(doc, &s); err != nil {
			t.Fatal(err)
		}
		if s.Kind != "Stage" {
			t.Fatalf("kind %q in kwok-stages.yaml", s.Kind)
		}
		stages[s.Metadata.Name] = s.Spec
	}
	for _, name := range []string{"node-initialize", "node-heartbeat-with-lease", "pod-ready", "taskgate-pod-complete", "pod-delete"} {
		if stages[name] == nil {
			t.Errorf("no Stage %s", name)
		}
	}
	delay, _ := stages["taskgate-pod-complete"]["delay"].(map[string]any)
	ms, _ := delay["durationMilliseconds"].(float64)
	want, _ := time.ParseDuration(taskPodRunTime)
	if time.Duration(ms)*time.Millisecond != want {
		t.Errorf("taskgate-pod-complete delay %vms, the output says %s", ms, taskPodRunTime)
	}
	if !strings.Contains(string(kwokStages), `'.metadata.labels["`+v1alpha1.TaskLabel+`"]'`) {
		t.Error("taskgate-pod-complete does not select the Pods by the task label")
	}
}
