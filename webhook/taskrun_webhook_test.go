package webhook

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TestAtSnapshot: what the Admitter says about spec.plugin and spec.config
// moves under spec.taskSpec; other fields of a run (its taskRef, its
// requester) stay where they are.
func TestAtSnapshot(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "plugin", in: "spec.plugin", want: "spec.taskSpec.plugin"},
		{name: "config", in: "spec.config", want: "spec.taskSpec.config"},
		{name: "config field", in: "spec.config.clusterRole", want: "spec.taskSpec.config.clusterRole"},
		{name: "config index", in: "spec.config.resources[0]", want: "spec.taskSpec.config.resources[0]"},
		{name: "taskRef stays", in: "spec.taskRef.name", want: "spec.taskRef.name"},
		{name: "requester stays", in: "spec.requester", want: "spec.requester"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := field.ErrorList{field.Invalid(field.NewPath("x"), "v", "d")}
			in[0].Field = tt.in
			out := atSnapshot(in)
			if out[0].Field != tt.want || in[0].Field != tt.in {
				t.Errorf("atSnapshot(%s) = %s (input now %s), want %s and the input untouched", tt.in, out[0].Field, in[0].Field, tt.want)
			}
		})
	}
	if w := warningsAtSnapshot([]string{`spec.config.image "busybox" has no tag`}); w[0] != `spec.taskSpec.config.image "busybox" has no tag` {
		t.Errorf("warning %q, want it at spec.taskSpec.config", w[0])
	}
}

// TestNameHint: a close name is offered; few names are listed; none is said.
func TestNameHint(t *testing.T) {
	many := []string{"hello-world", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10"}
	tests := []struct {
		name  string
		names []string
		want  string
		not   string
	}{
		{name: "few", names: []string{"hello-world", "restore"}, want: `; did you mean "hello-world"? valid names: "hello-world", "restore"`},
		{name: "many: the close one only", names: many, want: `; did you mean "hello-world"?`, not: "valid names"},
		{name: "none", want: "; the namespace has no Task"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nameHint("helo-world", tt.names, "Task")
			if got != tt.want && !(tt.not != "" && strings.HasPrefix(got, tt.want) && !strings.Contains(got, tt.not)) {
				t.Errorf("nameHint = %q, want %q", got, tt.want)
			}
			if tt.not != "" && strings.Contains(got, tt.not) {
				t.Errorf("nameHint = %q lists every name", got)
			}
		})
	}
}
