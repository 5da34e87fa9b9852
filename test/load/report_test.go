package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
