package drills_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/webhook"
)

// hostileCase is a Task body sent as raw bytes, and what the refusal must
// name. wantCode 0 means any 4xx. Each is also sent as a one-off TaskRun
// (asTaskRun: the same plugin and config as spec.taskSpec), whose refusal
// names the same fields under spec.taskSpec.
type hostileCase struct {
	name      string
	body      []byte
	wantCode  int
	wantField string // a cause's field, or part of the message
	wantText  string // part of the message
	admit     bool   // a boundary case that must be admitted
}

// asTaskRun is the TaskRun twin of a Task case: the body's spec as a
// one-off run's spec.taskSpec, and the fields it must name under it.
func asTaskRun(tc hostileCase) hostileCase {
	tc.name += " (TaskRun)"
	tc.body = bytes.Replace(tc.body, []byte(`"kind":"Task",`), []byte(`"kind":"TaskRun",`), 1)
	if bytes.Contains(tc.body, []byte(`"spec":{`)) {
		tc.body = append(bytes.Replace(tc.body, []byte(`"spec":{`), []byte(`"spec":{"taskSpec":{`), 1), '}')
	}
	if rest, ok := strings.CutPrefix(tc.wantField, "spec."); ok {
		tc.wantField = "spec.taskSpec." + rest
	}
	tc.wantText = strings.ReplaceAll(tc.wantText, "spec.config", "spec.taskSpec.config")
	return tc
}

// sized is a custom-image config of exactly n bytes as JSON.
func sized(n int) []byte {
	head := []byte(`{"image":"busybox:1.36","command":["echo"`)
	tail := []byte(`]}`)
	var b bytes.Buffer
	b.Write(head)
	// Strings of at most 32 KiB (the schema's maxLength), as many as needed.
	for room := n - len(head) - len(tail); room > 0; {
		s := min(room-3, 32<<10) // `,""` around each
		if s < 0 {
			b.WriteString(strings.Repeat(" ", room)) // insignificant whitespace
			break
		}
		b.WriteString(`,"` + strings.Repeat("a", s) + `"`)
		room -= s + 3
	}
	b.Write(tail)
	return b.Bytes()
}

// nested is a custom-image config whose total nesting, the config object
// included, is depth levels.
func nested(depth int) []byte {
	return []byte(`{"image":"busybox:1.36","command":["echo"],"deep":` +
		strings.Repeat(`{"a":`, depth-1) + "1" + strings.Repeat("}", depth-1) + "}")
}

// maxAccessChecks is webhook.MaxAccessChecks (issue 13: at most 64
// SubjectAccessReviews per admission review), repeated here so that this
// package builds on branches without it.
const maxAccessChecks = 64

func hostileCases() []hostileCase {
	const limit = webhook.DefaultMaxConfigBytes
	ci, tr := v1alpha1.PluginCustomImage, v1alpha1.PluginTransformation
	manyCommands := `{"image":"busybox:1.36","command":[` + strings.Repeat(`"x",`, 299) + `"x"]}`
	hugeArray := `{"image":"busybox:1.36","command":[` + strings.Repeat(`"x",`, 99999) + `"x"]}`
	// Served, namespaced resources, so that their rights are checked in
	// each namespace: a list and a patch check per pair. (A resource not
	// served at admission is checked once, cluster-wide.)
	var res, nss []string
	for _, r := range []string{"configmaps", "secrets", "services", "serviceaccounts"} {
		res = append(res, fmt.Sprintf(`{"version":"v1","resource":%q}`, r))
	}
	widest := maxAccessChecks / (2 * len(res)) // namespaces
	for i := range 64 {
		nss = append(nss, fmt.Sprintf(`"ns%d"`, i))
	}
	transform := func(namespaces []string) []byte {
		return []byte(`{"resources":[` + strings.Join(res, ",") + `],"namespaces":[` + strings.Join(namespaces, ",") +
			`],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`)
	}
	return []hostileCase{
		// The defaults the mutating webhook adds (~70 bytes) must fit too.
		{name: "config just under 128 KiB", body: kit.TaskJSON("under", ci, sized(limit-256)), admit: true},
		{name: "config just over 128 KiB", body: kit.TaskJSON("over", ci, sized(limit+1)), wantCode: 422,
			wantField: "spec.config", wantText: fmt.Sprintf("may not be more than %d bytes", limit)},
		{name: "config of 2.5 MiB", body: kit.TaskJSON("big", ci, sized(5<<19))},
		{name: "nesting 33 levels", body: kit.TaskJSON("deep33", ci, nested(33)), wantCode: 422,
			wantField: "spec.config", wantText: "nested more than 32 levels"},
		{name: "nesting 1000 levels", body: kit.TaskJSON("deep1000", ci, nested(1000))},
		{name: "300 commands (maxItems 256)", body: kit.TaskJSON("many", ci, []byte(manyCommands)), wantCode: 422,
			wantField: "spec.config.command", wantText: "must have at most 256 items"},
		{name: "array of 100,000 items", body: kit.TaskJSON("huge", ci, []byte(hugeArray)), wantCode: 422,
			wantField: "spec.config", wantText: "may not be more than"},
		{name: "4 resources × 64 namespaces", body: kit.TaskJSON("wide", tr, transform(nss)), wantCode: 422,
			wantField: "spec.config.namespaces", wantText: fmt.Sprintf("more than %d", maxAccessChecks)},
		{name: fmt.Sprintf("4 resources × %d namespaces (one pair beyond the cap)", widest+1), body: kit.TaskJSON("wider", tr, transform(nss[:widest+1])),
			wantCode: 422, wantField: "spec.config.namespaces", wantText: fmt.Sprintf("more than %d", maxAccessChecks)},
		// The widest transformation admitted: a list and a patch
		// SubjectAccessReview per pair, up to the cap, all within the
		// webhook's timeout.
		{name: fmt.Sprintf("4 resources × %d namespaces (%d SubjectAccessReviews)", widest, 2*len(res)*widest),
			body: kit.TaskJSON("widest", tr, transform(nss[:widest])), admit: true},
		{name: "non-UTF-8 in image", body: kit.TaskJSON("utf8-image", ci, []byte("{\"image\":\"busybox\xff\xfe:1\",\"command\":[\"echo\"]}")),
			wantCode: 422, wantField: "spec.config.image"},
		{name: "non-UTF-8 in plugin", body: bytes.Replace(kit.TaskJSON("utf8-plugin", ci, []byte(`{"image":"busybox:1.36","command":["echo"]}`)),
			[]byte(`"custom-image"`), []byte("\"custom-\xc3\x28image\""), 1), wantCode: 422, wantField: "spec.plugin"},
		{name: "non-UTF-8 in a key", body: kit.TaskJSON("utf8-key", ci, []byte("{\"image\":\"busybox:1.36\",\"command\":[\"echo\"],\"\xffx\":1}")),
			wantCode: 422, wantField: "spec.config"},
		{name: "not JSON at all", body: []byte("{\"apiVersion\":\"automation.astronetes.io/v1alpha1\",\"kind\":\"Task\",\xff"), wantCode: 400},
	}
}

// TestHostileInput sends hostile Tasks, and one-off TaskRuns of the same
// specs, through the API server and the webhooks: each gets a clear 4xx
// naming the field (or the boundary case is admitted), the webhook server
// keeps serving in the same process, and its heap stays bounded.
func TestHostileInput(t *testing.T) {
	ns := newNamespace(t, "hostile")
	raw, err := kit.NewRawClient(admin.Config)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var cases []hostileCase
	for _, tc := range append(hostileCases(), wrongTypeCases(t)...) {
		cases = append(cases, tc, asTaskRun(tc))
	}
	rounds := short(2, 30)
	for round := range rounds {
		for _, tc := range cases {
			body := bytes.Replace(tc.body, []byte(`"metadata":{"name":"`), []byte(fmt.Sprintf(`"metadata":{"name":"r%d-`, round)), 1)
			create := raw.CreateTask
			if strings.HasSuffix(tc.name, " (TaskRun)") {
				create = raw.CreateTaskRun
			}
			began := time.Now()
			res, err := create(t.Context(), ns, body)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if tc.admit && round == 0 {
				t.Logf("%s: HTTP %d in %s", tc.name, res.Code, time.Since(began).Round(time.Millisecond))
			}
			if round == 0 || res.Code >= 500 {
				checkHostile(t, tc, res)
			}
		}
	}
	// Still the same server, still serving: a good Task is admitted and
	// defaulted, and a run of it gets its snapshot and requester.
	good := customImageTask(ns, "after-the-barrage")
	if err := admin.Client.Create(t.Context(), good); err != nil {
		t.Fatalf("good Task after the barrage: %v", err)
	}
	if !bytes.Contains(good.Spec.Config.Raw, []byte(`"namespace"`)) {
		t.Errorf("good Task not defaulted after the barrage: %s", good.Spec.Config.Raw)
	}
	run := kit.NewTaskRun(ns, "after-the-barrage", good.Name)
	if err := admin.Client.Create(t.Context(), run); err != nil {
		t.Fatalf("good TaskRun after the barrage: %v", err)
	}
	if run.Spec.TaskSpec == nil || !jsonEqual(run.Spec.TaskSpec.Config.Raw, good.Spec.Config.Raw) || run.Spec.Requester == nil || run.Spec.Requester.Username != admin.Name {
		t.Errorf("good TaskRun after the barrage: snapshot %+v, requester %+v; want the Task's spec and %s", run.Spec.TaskSpec, run.Spec.Requester, admin.Name)
	}
	if err := whServer.StartedChecker()(nil); err != nil {
		t.Errorf("webhook server: %v", err)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	const bound = 64 << 20
	t.Logf("%d cases × %d rounds in %s; heap in use %d MiB before, %d MiB after",
		len(cases), rounds, time.Since(start).Round(time.Millisecond), before.HeapInuse>>20, after.HeapInuse>>20)
	if after.HeapInuse > before.HeapInuse+bound {
		t.Errorf("heap in use grew by %d MiB over the barrage, bound %d MiB", (after.HeapInuse-before.HeapInuse)>>20, bound>>20)
	}
}

func checkHostile(t *testing.T, tc hostileCase, res kit.RawResult) {
	t.Helper()
	msg := ""
	if res.Status != nil {
		msg = res.Status.Message
	}
	if tc.admit {
		if res.Code != 201 {
			t.Errorf("%s: HTTP %d, want 201 Created: %.500s", tc.name, res.Code, msg)
		}
		return
	}
	switch {
	case res.Code < 400 || res.Code >= 500:
		t.Errorf("%s: HTTP %d, want a 4xx: %.500s", tc.name, res.Code, res.Body)
	case tc.wantCode != 0 && res.Code != tc.wantCode:
		t.Errorf("%s: HTTP %d, want %d: %.500s", tc.name, res.Code, tc.wantCode, msg)
	case res.Status == nil || msg == "":
		t.Errorf("%s: HTTP %d without a Status message: %.300s", tc.name, res.Code, res.Body)
	case tc.wantField != "" && !res.Names(tc.wantField):
		t.Errorf("%s: HTTP %d does not name %s (causes %v): %.500s", tc.name, res.Code, tc.wantField, res.Causes(), msg)
	case tc.wantText != "" && !strings.Contains(msg, tc.wantText):
		t.Errorf("%s: HTTP %d lacks %q: %.500s", tc.name, res.Code, tc.wantText, msg)
	}
	if testing.Verbose() {
		t.Logf("%s: HTTP %d %.200s", tc.name, res.Code, msg)
	}
}

// jsonEqual says whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
