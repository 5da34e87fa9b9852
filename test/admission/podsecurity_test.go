package admission_test

import (
	"strings"
	"testing"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// TestPodSecurityFields: a securityContext beyond what PodSecurity
// restricted allows is refused naming the field; in a restricted namespace
// a Task that runs as non-root passes the preflight, while a default one is
// refused with PodSecurity's own text telling what to set.
func TestPodSecurityFields(t *testing.T) {
	restricted := podSecurityNamespace(t, "psa-fields", "restricted")
	nonRoot := plainImage + "\nsecurityContext: {runAsNonRoot: true, runAsUser: 1000}"
	tests := []struct {
		name    string
		config  string
		refused bool
		run     bool     // the Task is admitted; create a TaskRun of it
		want    []string // in kubectl's output
	}{
		{name: "privileged", refused: true, config: plainImage + "\nsecurityContext: {privileged: true}",
			want: []string{"spec.config.securityContext.privileged: Unsupported value: true"}},
		{name: "privilege escalation", refused: true, config: plainImage + "\nsecurityContext: {allowPrivilegeEscalation: true}",
			want: []string{"spec.config.securityContext.allowPrivilegeEscalation: Unsupported value: true"}},
		{name: "a capability restricted forbids", refused: true, config: plainImage + "\nsecurityContext: {capabilities: {add: [SYS_ADMIN]}}",
			want: []string{`spec.config.securityContext.capabilities.add[0]: Unsupported value: "SYS_ADMIN"`}},
		{name: "a non-root run is admitted in a restricted namespace", config: nonRoot + "\nautomountServiceAccountToken: false\nnodeSelector: {kubernetes.io/os: linux}",
			run: true, want: []string{"taskrun.automation.astronetes.io/ps-d created"}},
		{name: "a run of a default Task is refused with PodSecurity's text", refused: true, config: plainImage, run: true,
			want: []string{"the API server refuses the run's Pod", `violates PodSecurity "restricted:latest"`, "runAsNonRoot != true",
				`securityContext.runAsNonRoot=true`}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "ps-" + string(rune('a'+i))
			out, err := kubectl(t, taskYAML(name, restricted, v1alpha1.PluginCustomImage, tt.config), "apply", "-f", "-")
			if tt.run {
				if err != nil {
					t.Fatalf("the Task refused: %v\n%s", err, out)
				}
				out, err = kubectl(t, runYAML(name, restricted, name), "create", "-f", "-")
			}
			if tt.refused != (err != nil) {
				t.Errorf("refused %v, want %v:\n%s", err != nil, tt.refused, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, loose := range []string{"allowPrivilegeEscalation != false", "unrestricted capabilities", "seccompProfile"} {
				if strings.Contains(out, loose) {
					t.Errorf("PodSecurity still objects to the defaults (%s):\n%s", loose, out)
				}
			}
		})
	}
}
