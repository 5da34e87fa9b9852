// Package run_test runs `make run`'s program, cmd/taskgate-local, end to end:
// a real kube-apiserver and etcd, the real manager binary, kubectl applying
// the samples.
package run_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astronetes/taskgate/test/testutil"
)

// skipUnlessCI skips on a developer's machine and fails in CI, where a
// skipped test would hide a broken setup.
func skipUnlessCI(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

var (
	buildOnce            sync.Once
	managerBin, localBin string
	buildErr             error
	buildDir             string
)

// binaries builds the manager and taskgate-local as `make build` does, once
// for the package.
func binaries(t *testing.T) (manager, local string) {
	t.Helper()
	for _, bin := range []string{"etcd", "kube-apiserver", "kubectl", "helm"} {
		if _, err := os.Stat(filepath.Join(testutil.AssetsDir(), bin)); err != nil {
			skipUnlessCI(t, bin+" missing in "+testutil.AssetsDir()+": run `make envtest`")
		}
	}
	if _, err := os.Stat(filepath.Join(testutil.RepoRoot(), "cmd", "taskgate")); err != nil {
		skipUnlessCI(t, "cmd/taskgate does not exist yet")
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "taskgate-run-test-"); buildErr != nil {
			return
		}
		managerBin, localBin = filepath.Join(buildDir, "taskgate"), filepath.Join(buildDir, "taskgate-local")
		// One go build links both binaries in parallel.
		cmd := exec.Command("go", "build", "-trimpath", "-o", buildDir+string(filepath.Separator), "./cmd/taskgate", "./cmd/taskgate-local")
		cmd.Dir = testutil.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return managerBin, localBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// proc is a running taskgate-local.
type proc struct {
	cmd    *exec.Cmd
	out    *testutil.SyncBuffer
	state  string
	exited chan error // receives Wait's result once
	err    error
	done   bool
}

// wait waits for the process to exit, or for the timeout.
func (p *proc) wait(timeout time.Duration) (error, bool) {
	if p.done {
		return p.err, true
	}
	select {
	case p.err = <-p.exited:
		p.done = true
		return p.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// interrupt sends SIGTERM, as a Ctrl-C would, and checks that the process
// exits within the timeout, as interrupted, leaving nothing running.
func (p *proc) interrupt(t *testing.T, timeout time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if _, exited := p.wait(timeout); !exited {
		t.Fatalf("still running %s after SIGTERM:\n%s", timeout, p.out)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 130 && code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 130 (interrupted) or 0\n%s", code, p.out)
	}
	if procs := leftovers(p.state); len(procs) > 0 {
		t.Errorf("processes left running after SIGTERM:\n%s\noutput:\n%s", strings.Join(procs, "\n"), p.out)
	}
}

// start runs taskgate-local with its own state dir, whose path appears in
// the command line of every process it starts (etcd's data dir, the API
// server's certificates, the manager's cert dir): that is how leftovers are
// found, without touching anyone else's etcd.
func start(t *testing.T, extra ...string) *proc {
	t.Helper()
	manager, local := binaries(t)
	state := filepath.Join(t.TempDir(), "state")
	// --node=kwok: these tests are about make run with the simulated node
	// (a real one is test/e2e's); extra may say otherwise (the last wins).
	args := append([]string{"--state-dir", state, "--manager-binary", manager, "--assets", testutil.AssetsDir(), "--node=kwok"}, extra...)
	p := &proc{cmd: exec.Command(local, args...), out: &testutil.SyncBuffer{}, state: state, exited: make(chan error, 1)}
	p.cmd.Dir = testutil.RepoRoot()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if _, ok := p.wait(0); !ok {
			_ = p.cmd.Process.Kill()
			p.wait(time.Minute)
		}
		killLeftovers(state)
	})
	return p
}

// leftovers lists processes whose command line names the state dir.
func leftovers(state string) []string {
	out, _ := exec.Command("pgrep", "-af", state).Output()
	var procs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "pgrep") {
			procs = append(procs, line)
		}
	}
	return procs
}

func killLeftovers(state string) {
	for _, line := range leftovers(state) {
		if pid, err := strconv.Atoi(strings.Fields(line)[0]); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestDemo runs `make run`'s program on etcd and kube-apiserver alone
// (--nodes=false), the binaries `make test` builds; controlplane_test.go
// (`make test-run`) runs it as `make run` does, with kube-controller-manager,
// kube-scheduler and kwok.
func TestDemo(t *testing.T) {
	p := start(t, "--exit-after-demo", "--nodes=false")
	// While the demo runs (kubectl applies, the settle wait), the manager's
	// webhook listener is checked once it is ready.
	checked, metricsChecked := false, false
	deadline := time.Now().Add(4 * time.Minute)
	var err error
	exited := false
	for !exited && time.Now().Before(deadline) {
		if m := managerReady.FindStringSubmatch(p.out.String()); m != nil && !checked {
			pid, _ := strconv.Atoi(m[1])
			port, _ := strconv.Atoi(m[2])
			checkWebhookLoopbackOnly(t, pid, port)
			checked = true
		}
		if m := metricsLine.FindStringSubmatch(p.out.String()); m != nil && !metricsChecked {
			port, _ := strconv.Atoi(m[2])
			checkMetrics(t, m[1], port)
			metricsChecked = true
		}
		err, exited = p.wait(20 * time.Millisecond)
	}
	if !checked {
		t.Error("no \"manager ready\" line: the webhook listener was not checked")
	}
	if !metricsChecked {
		t.Error("no \"==> metrics: http://127.0.0.1:<port>/metrics\" line: the metrics endpoint was not checked")
	}
	if !exited || err != nil {
		t.Fatalf("taskgate-local --exit-after-demo: exited=%v err=%v\n%s", exited, err, p.out)
	}
	text := p.out.String()
	t.Logf("output:\n%s", text)

	// The samples are kept as Tasks, and nothing ran when they were
	// created: the first `kubectl get tasks -A` shows no run of any.
	tables := tasksTables(text)
	if len(tables) < 2 {
		t.Fatalf("want `kubectl get tasks -A` before and after the runs, got %d tables", len(tables))
	}
	before, after := tables[0], tables[len(tables)-1]
	if len(before) != 5 {
		t.Errorf("want a header and 4 samples in the first Task table:\n%s", strings.Join(before, "\n"))
	}
	for _, row := range before[1:] {
		for _, phase := range []string{"Pending", "Running", "Succeeded", "Failed"} {
			if slices.Contains(strings.Fields(row), phase) {
				t.Errorf("a Task had a run (%s) before anything ran it: %s", phase, row)
			}
		}
	}
	// After `taskgate run`: each Task's last run, and the runs themselves.
	for _, plugin := range []string{"kubernetes-object-transformation", "run-synchronization"} {
		if !hasRow(after, plugin, "Succeeded") {
			t.Errorf("no Task of %s whose last run Succeeded in:\n%s", plugin, strings.Join(after, "\n"))
		}
	}
	runs := taskRunsTable(text)
	if len(runs) == 0 {
		t.Fatal("no `kubectl get taskruns -A` table in the output")
	}
	for _, plugin := range []string{"kubernetes-object-transformation", "run-synchronization"} {
		if !hasRow(runs, plugin, "Succeeded") {
			t.Errorf("no Succeeded %s run in:\n%s", plugin, strings.Join(runs, "\n"))
		}
	}
	if !hasRow(runs, "custom-image") {
		t.Errorf("no custom-image run in:\n%s", strings.Join(runs, "\n"))
	}
	if n := countRows(runs, "hello-world"); n != 2 {
		t.Errorf("%d runs of Task hello-world, want 2 (the demo runs it twice):\n%s", n, strings.Join(runs, "\n"))
	}
	for _, want := range []string{
		`admission webhook "vtask.automation.astronetes.io" denied the request`,
		`"imagee"`,
		`"kuberentes-to-kubernetes"`,
		// The TaskRun of a Task that does not exist: refused naming it,
		// with the close name.
		`no Task "hello-wrld" in namespace "default"`,
		"hello-world",
		"No Pods run here",
		// Not the names a release called taskgate gives its own, so
		// `helm install taskgate` into this cluster does not clash.
		"MutatingWebhookConfiguration taskgate-local-mutating, ValidatingWebhookConfiguration taskgate-local-validating (from config/webhook/manifests.yaml)",
		"\nexport KUBECONFIG=" + filepath.Join(p.state, "kubeconfig") + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Every run acts as the admin who ran it with `taskgate run`, recorded
	// at admission: an ordinary user in kubeadm:cluster-admins, not
	// system:masters.
	if !strings.Contains(text, "neither is in system:masters") {
		t.Error("output does not say who the admin and the manager are")
	}
	reqs := requesters(text)
	if len(reqs) < len(runs)-1 {
		t.Errorf("requester table %v has fewer rows than the TaskRun table:\n%s", reqs, strings.Join(runs, "\n"))
	}
	for run, cols := range reqs {
		groups := strings.Join(cols[1:], " ")
		if cols[0] != "admin" || !strings.Contains(groups, "kubeadm:cluster-admins") || strings.Contains(groups, "system:masters") {
			t.Errorf("TaskRun %s: spec.requester %v, want admin in kubeadm:cluster-admins", run, cols)
		}
	}
	if procs := leftovers(p.state); len(procs) > 0 {
		t.Errorf("processes left running after exit:\n%s", strings.Join(procs, "\n"))
	}
}

// TestInterrupted sends SIGTERM once the control plane is up, while the
// manager starts: everything started so far must stop, as after a Ctrl-C.
func TestInterrupted(t *testing.T) {
	p := start(t, "--nodes=false")
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(p.out.String(), "control plane up") {
		if _, exited := p.wait(100 * time.Millisecond); exited || time.Now().After(deadline) {
			t.Fatalf("control plane did not come up:\n%s", p.out)
		}
	}
	if len(leftovers(p.state)) < 2 {
		t.Fatalf("etcd and kube-apiserver do not name the state dir; the leftover check would prove nothing: %q", leftovers(p.state))
	}
	p.interrupt(t, time.Minute)
}

// tasksTables returns each table (header and rows) printed by `kubectl
// get tasks -A`, in order.
func tasksTables(text string) [][]string {
	return tables(text, func(cols []string) bool {
		return slices.Contains(cols, "PLUGIN") && slices.Contains(cols, "LAST") && !slices.Contains(cols, "TASK")
	})
}

// taskRunsTable returns the header and rows of the first `kubectl get
// taskruns -A`.
func taskRunsTable(text string) []string {
	t := tables(text, func(cols []string) bool {
		return slices.Contains(cols, "TASK") && slices.Contains(cols, "PLUGIN") && slices.Contains(cols, "PHASE")
	})
	if len(t) == 0 {
		return nil
	}
	return t[0]
}

// tables returns the header and rows of each table of text whose header
// (starting NAMESPACE) is; a table ends at a blank line.
func tables(text string, is func(header []string) bool) [][]string {
	var out [][]string
	var cur []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		cols := strings.Fields(line)
		switch {
		case len(cols) > 0 && cols[0] == "NAMESPACE" && is(cols):
			cur = []string{line}
		case cur != nil && len(cols) == 0:
			out, cur = append(out, cur), nil
		case cur != nil:
			cur = append(cur, line)
		}
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}

// countRows counts the rows with field among their columns.
func countRows(rows []string, field string) int {
	n := 0
	for _, r := range rows[1:] {
		if slices.Contains(strings.Fields(r), field) {
			n++
		}
	}
	return n
}

func hasRow(rows []string, fields ...string) bool {
	for _, r := range rows[1:] {
		cols := strings.Fields(r)
		all := true
		for _, f := range fields {
			all = all && slices.Contains(cols, f)
		}
		if all {
			return true
		}
	}
	return false
}
