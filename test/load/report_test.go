package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
)

func latencies(d time.Duration, n int) kit.Latencies {
	l := make(kit.Latencies, n)
	for i := range l {
		l[i] = d
	}
	return l
}

// TestPreflightVerdict checks the decision rule as the report
// prints it: on unless preflight on ÷ off exceeds 2 at some concurrency,
// and undecided when no dry-run was sent.
func TestPreflightVerdict(t *testing.T) {
	for _, tc := range []struct {
		name    string
		on      [2]time.Duration // concurrency 1, 16
		dryRuns int
		want    string
	}{
		{name: "cheap", on: [2]time.Duration{12 * time.Millisecond, 30 * time.Millisecond}, dryRuns: 10, want: "stays **on**"},
		{name: "doubles at 16 only", on: [2]time.Duration{12 * time.Millisecond, 41 * time.Millisecond}, dryRuns: 10, want: "should default to **off**"},
		{name: "no preflight ran", on: [2]time.Duration{50 * time.Millisecond, 50 * time.Millisecond}, want: "**undecided**"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &p1Result{creates: 10, rounds: 1, modes: p1CustomModes, created: map[string]int{modeTaskgate: 10, modePreflightOff: 10},
				onReqs: map[string]int{"POST (dry-run) pods → 201": tc.dryRuns}, offReqs: map[string]int{},
				lat: map[int]map[string]kit.Latencies{}}
			for i, c := range []int{1, 16} {
				p.lat[c] = map[string]kit.Latencies{modeTaskgate: latencies(tc.on[i], 5),
					modePreflightOff: latencies(10*time.Millisecond*time.Duration(c/16+1), 5), modeNoop: latencies(8*time.Millisecond, 5)}
			}
			r := &report{p1Custom: p}
			if got := r.p1CustomSection(); !strings.Contains(got, tc.want) {
				t.Errorf("verdict: want %q in\n%s", tc.want, got)
			}
		})
	}
}

func TestParseKiB(t *testing.T) {
	got, err := parseKiB("1, 32")
	if err != nil || !slices.Equal(got, []int{1 << 10, 32 << 10}) {
		t.Errorf("parseKiB: %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "x", "1,-2"} {
		if _, err := parseKiB(bad); err == nil {
			t.Errorf("parseKiB(%q): no error", bad)
		}
	}
}

// TestRequesterModeRules checks that the harness's manager, bound to the
// ClusterRole the chart renders for --act-as=requester, holds none of the
// rights that exist only for children: it must impersonate for them.
func TestRequesterModeRules(t *testing.T) {
	role, err := kit.RequesterModeRole(t.Context(), filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				if v == "create" && (res == "pods" || res == "clusterrolebindings" || res == "synchronizations") || v == "bind" || v == "impersonate" ||
					v == "patch" && res == "configmaps" {
					t.Errorf("manager may %s %v/%s itself", v, r.APIGroups, res)
				}
			}
		}
	}
}

// TestP3Target checks P3's target as the report prints it: a share of the
// create median measured in the same run, per sample.
func TestP3Target(t *testing.T) {
	r := &report{p3Command: "go test ./webhook", p3: []p3Row{
		{name: "cheap.yaml", nsPerOp: 40_000, minNsPerOp: 30_000, runs: 5},
		{name: "dear.yaml", nsPerOp: 150_000, minNsPerOp: 140_000, runs: 5},
	}, p3Create: &p3Create{creates: 400, median: 2500 * time.Microsecond, bySample: map[string]time.Duration{"cheap": 2 * time.Millisecond}}}
	got := r.p3Section()
	for _, want := range []string{"median **2.50 ms**, so ≤ 125 µs", "| cheap.yaml | 40.0 µs | 30.0 µs | 0 | 0 | 2.00 ms | 1.60% | met |",
		"| dear.yaml | 150.0 µs | 140.0 µs | 0 | 0 |  | 6.00% | **missed** by 20% (25 over) |"} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in\n%s", want, got)
		}
	}
	if len(r.summary) != 2 || r.summary[0][3] != "met" || !strings.HasPrefix(r.summary[1][3], "**missed**") {
		t.Errorf("summary %q", r.summary)
	}
}

// TestP1VAPSection checks the comparison with the built-in policies as the
// report prints it: each taskgate mode ÷ VAP+MAP beside ÷ no-op and ÷ no
// webhooks, in the table and the summary, and the rules table.
func TestP1VAPSection(t *testing.T) {
	p := &p1Result{kind: kindTaskRun, creates: 10, rounds: 1, modes: []string{modeTaskgate, modeNoop, modeNone, modeOneTrip, modeVAP},
		lat: map[int]map[string]kit.Latencies{}}
	for _, c := range []int{1, 16} {
		f := time.Duration(c)
		p.lat[c] = map[string]kit.Latencies{modeTaskgate: latencies(8*f*time.Millisecond, 5), modeOneTrip: latencies(6*f*time.Millisecond, 5),
			modeNoop: latencies(5*f*time.Millisecond, 5), modeNone: latencies(2*f*time.Millisecond, 5), modeVAP: latencies(4*f*time.Millisecond, 5)}
	}
	if !p.hasVAP() {
		t.Fatal("hasVAP: false")
	}
	r := &report{p1Run: p}
	got := r.p1VAPSection()
	for _, want := range []string{
		"| 1 | taskgate | 8.00 ms | 8.00 ms | 2.00 / 2.00 | 1.60 / 1.60 | 4.00 / 4.00 |",
		"| 16 | single-call | 96.00 ms | 96.00 ms | 1.50 / 1.50 | 1.20 / 1.20 | 3.00 / 3.00 |",
		"| 16 | VAP+MAP | 64.00 ms | 64.00 ms | 1.00 / 1.00 |",
		"TaskRun creates:",
		"| rule | taskgate | VAP+MAP |",
		"Preflight: server-side dry-run",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in\n%s", want, got)
		}
	}
	var sums []string
	for _, s := range r.summary {
		sums = append(sums, s[0]+" = "+s[1])
	}
	for _, want := range []string{"P1 TaskRun create median, taskgate (the pair) ÷ VAP+MAP, concurrency 1 = 2.00", "P1 TaskRun create median, single-call ÷ VAP+MAP, concurrency 16 = 1.50"} {
		if !slices.Contains(sums, want) {
			t.Errorf("summary: want %q in %q", want, sums)
		}
	}
	if (&p1Result{lat: map[int]map[string]kit.Latencies{1: {modeTaskgate: nil}}}).hasVAP() {
		t.Error("hasVAP without the mode")
	}
}

// TestP9Section checks P9 as the report prints it: each sample's median
// time to its first child ÷ the Jobs' median to their Pods, with the
// verdict against ≤ 1.0.
func TestP9Section(t *testing.T) {
	p := &p9Result{runs: 5, samples: []string{"fast", "slow"},
		plugins: map[string]v1alpha1.Plugin{"fast": v1alpha1.PluginRunSync, "slow": v1alpha1.PluginCustomImage},
		first:   map[string]kit.Latencies{p9Job: latencies(40*time.Millisecond, 5), "fast": latencies(20*time.Millisecond, 5), "slow": latencies(60*time.Millisecond, 5)},
		create:  map[string]kit.Latencies{p9Job: latencies(3*time.Millisecond, 5), "fast": latencies(5*time.Millisecond, 5), "slow": latencies(9*time.Millisecond, 5)}}
	r := &report{p9: p}
	got := r.p9Section()
	for _, want := range []string{
		"| " + p9Job + " | 40.00 ms | 40.00 ms | 1 | 3.00 ms |",
		"| TaskRun of fast (run-synchronization) | 20.00 ms | 20.00 ms | 0.50 | 5.00 ms |",
		"| TaskRun of slow (custom-image) | 60.00 ms | 60.00 ms | 1.50 | 9.00 ms |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in\n%s", want, got)
		}
	}
	if len(r.summary) != 2 || r.summary[0][1] != "0.50" || r.summary[0][3] != "met" || !strings.HasPrefix(r.summary[1][3], "**missed** by 50%") {
		t.Errorf("summary %q", r.summary)
	}
}

// TestBenchmarksNotesCurrent: BENCHMARKS.md ends with the notes the report
// appends, so an edit of notes.md reaches the committed file (by make bench,
// or by replacing everything from "## Notes" on, which is what the report
// would write there).
func TestBenchmarksNotesCurrent(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(doc), "\n"+notes) {
		t.Error("BENCHMARKS.md does not end with test/load/notes.md: run make bench, or put notes.md in place of its \"## Notes\" part")
	}
}
