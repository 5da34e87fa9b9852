package main

import (
	"fmt"
	"strings"

	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// p9Limit is P9's target: a TaskRun's first child comes at least as soon
// as a Job's Pod does.
const p9Limit = 1.0

// p9Section reports P9: per sample, the median time from a TaskRun's create
// to its first child ÷ the median of kube-controller-manager's Job create to
// its Pod, measured in the same rounds.
func (r *report) p9Section() string {
	var b strings.Builder
	p := r.p9
	b.WriteString("\n## P9: from a TaskRun's create to its first child, beside a Job's to its Pod\n\n")
	fmt.Fprintf(&b, "What matters in an incident: how soon a run starts acting. %d rounds; each creates one Job (kube-controller-manager %s, its Job controller only, a process of its own) and one TaskRun of each seed sample's Task (admitted by taskgate's webhooks as installed, run by `taskgate manager` as a subprocess, as `%s` with the chart's requester-mode rules), one at a time, the order rotated every round. "+
		"The clock starts when the create is answered (admission is P1's figure; the creates' own medians are in the table) and stops when a watch of the namespace sees the first child: the Job's Pod; a custom-image run's Pod (its ServiceAccount comes before it); a run-synchronization run's Synchronization; a transformation's first patch of its target Deployment (put back, untimed, before each run).\n\n",
		p.runs, testutil.KubeVersion(), kit.ManagerUser)
	var rows [][]string
	for _, row := range append([]string{p9Job}, p.samples...) {
		first, create := p.first[row], p.create[row]
		name, v := row, "1"
		if row != p9Job {
			name = fmt.Sprintf("TaskRun of %s (%s)", row, p.plugins[row])
			v = fmt.Sprintf("%.2f", p.ratio(row))
			r.sum(fmt.Sprintf("P9 TaskRun create → first child, %s (%s), median ÷ Job create → Pod", row, p.plugins[row]),
				v, fmt.Sprintf("≤ %.1f", p9Limit), verdict(p.ratio(row), p9Limit, false))
		}
		rows = append(rows, []string{name, ms(first.Median()), ms(first.P99()), v, ms(create.Median())})
	}
	table(&b, []string{"created", "→ first child, median", "p99", "median ÷ Job's", "the create itself, median"}, rows)
	return b.String()
}
