package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/astronetes/taskgate/test/load/kit"
)

// preflightLimit is issue 13's decision rule: the preflight is on by
// default unless it more than doubles a custom-image create's median.
const preflightLimit = 2.0

// p1CustomSection reports the custom-image variant of P1: the shipped
// webhooks with the preflight on (the default) and off, and the no-op pair.
func (r *report) p1CustomSection() string {
	var b strings.Builder
	p := r.p1Custom
	b.WriteString("\n## P1, custom-image: what the preflight costs a TaskRun create\n\n")
	fmt.Fprintf(&b, "TaskRuns of the custom-image samples only, in turn (hello-world: the preflight dry-runs its Pod; kubectl: its Pod and its ClusterRoleBinding to cluster-admin), %d creates per mode and concurrency in %d rounds, modes interleaved as above. "+
		"`taskgate` is the shipped set-up (preflight on, `--preflight=true`); `preflight off` is a second webhook server with the same options and `--preflight=false`; `preflight cache`, where measured, a third with the what-if `webhook.Options.PreflightCacheTTL` = 10 s (a requester's clean pass reused for runs that differ only in name; `--preflight-cache-ttl=10s`). "+
		"The TaskRuns (of one Task per custom-image sample) are created by `bench-admin`, bound to cluster-admin through the group `%s` (as kubeadm does; not system:masters, which constrained impersonation refuses), "+
		"and both webhook managers run as `%s` with the chart's requester-mode rules (no pods create: the dry-run Pod is created impersonating the requester, through constrained impersonation). "+
		"The namespace has a `default` ServiceAccount, created by the driver as kube-controller-manager would (envtest runs none; the ServiceAccount admission plugin refuses a Pod, dry-run or not, whose ServiceAccount is missing).\n\n",
		p.creates, p.rounds, kit.AdminGroup, kit.ManagerUser)
	concs := p.concurrencies()
	var rows [][]string
	worst, worstConc := 0.0, 0
	for _, c := range concs {
		noop, off := p.lat[c][modeNoop], p.lat[c][modePreflightOff]
		for _, m := range p.modes {
			l := p.lat[c][m]
			rows = append(rows, []string{fmt.Sprint(c), m, ms(l.Median()), ms(l.P99()),
				fmt.Sprintf("%.2f / %.2f", ratio(l.Median(), noop.Median()), ratio(l.P99(), noop.P99())),
				fmt.Sprintf("%.2f / %.2f", ratio(l.Median(), off.Median()), ratio(l.P99(), off.P99()))})
		}
		on := p.lat[c][modeTaskgate]
		v := ratio(on.Median(), off.Median())
		if v > worst {
			worst, worstConc = v, c
		}
		r.sum(fmt.Sprintf("P1 custom-image TaskRun create median, preflight on ÷ off, concurrency %d", c), fmt.Sprintf("%.2f", v),
			fmt.Sprintf("≤ %.2f (else default off)", preflightLimit), verdict(v, preflightLimit, false))
		r.sum(fmt.Sprintf("P1 custom-image TaskRun create median ÷ no-op webhooks, concurrency %d: preflight on / off", c),
			fmt.Sprintf("%.2f / %.2f", ratio(on.Median(), noop.Median()), ratio(off.Median(), noop.Median())), "(reported)", "")
	}
	table(&b, []string{"concurrency", "mode", "median", "p99", "÷ no-op (median / p99)", "÷ preflight off (median / p99)"}, rows)
	b.WriteString("Median by sample (ms):\n\n")
	p.sampleTable(&b, concs, p.modes)
	b.WriteString(p.preflightRequests())
	b.WriteString("**Verdict** (issue 13: the preflight is on by default unless it more than doubles a custom-image create's median latency): ")
	switch onDry, _ := p.dryRuns(); {
	case len(concs) == 0:
		b.WriteString("no figures.\n")
	case onDry == 0:
		b.WriteString("**undecided**: no preflight ran (see above).\n")
	case worst > preflightLimit:
		fmt.Fprintf(&b, "preflight on ÷ off is **%.2f** at concurrency %d, more than %.0f×: the rule says `--preflight` should default to **off**.\n", worst, worstConc, preflightLimit)
	default:
		fmt.Fprintf(&b, "preflight on ÷ off is at most %.2f (concurrency %d), within %.0f×: `--preflight` stays **on** by default.\n", worst, worstConc, preflightLimit)
	}
	return b.String()
}

// preflightRequests shows the dry-run requests each webhook server sent
// during the custom-image run: the proof that the preflight ran (on) and
// did not (off).
// sampleTable writes the median create latency of each sample, by
// concurrency and mode.
func (p *p1Result) sampleTable(b *strings.Builder, concs []int, modes []string) {
	var rows [][]string
	for _, c := range concs {
		var names []string
		for s := range p.bySample[c][modeTaskgate] {
			names = append(names, s)
		}
		sort.Strings(names)
		for _, s := range names {
			row := []string{fmt.Sprint(c), s}
			for _, m := range modes {
				row = append(row, fmt.Sprintf("%.2f", float64(p.bySample[c][m][s].Median())/1e6))
			}
			rows = append(rows, row)
		}
	}
	table(b, append([]string{"concurrency", "sample"}, modes...), rows)
}

func (p *p1Result) preflightRequests() string {
	var b strings.Builder
	onDry, offDry := p.dryRuns()
	onAll, offAll := sumCounts(p.onReqs), sumCounts(p.offReqs)
	fmt.Fprintf(&b, "The webhook servers' own API requests during this run (TaskRuns created through each, warm-ups included: %d with preflight on, %d off): "+
		"preflight on sent %d dry-run requests (%.2f per TaskRun) of %d in all; preflight off %d of %d.",
		p.created[modeTaskgate], p.created[modePreflightOff], onDry, perTask(onDry, p.created[modeTaskgate]), onAll, offDry, offAll)
	var keys []string
	for k := range p.onReqs {
		if strings.Contains(k, "(dry-run)") {
			keys = append(keys, fmt.Sprintf("%s: %d", k, p.onReqs[k]))
		}
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		fmt.Fprintf(&b, " With preflight on: %s.", strings.Join(keys, "; "))
	}
	if onDry == 0 {
		b.WriteString(" **No dry-run was sent with preflight on: this build's webhook does not implement the preflight yet, so the on ÷ off ratio measures nothing.**")
	}
	b.WriteString("\n\n")
	return b.String()
}

// dryRuns counts the dry-run requests of the webhook servers, preflight on
// and off.
func (p *p1Result) dryRuns() (on, off int) {
	count := func(reqs map[string]int) (n int) {
		for k, v := range reqs {
			if strings.Contains(k, "(dry-run)") {
				n += v
			}
		}
		return n
	}
	return count(p.onReqs), count(p.offReqs)
}

func sumCounts(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

func perTask(n, tasks int) float64 {
	if tasks == 0 {
		return 0
	}
	return float64(n) / float64(tasks)
}

func (p *p1Result) concurrencies() []int {
	concs := make([]int, 0, len(p.lat))
	for c := range p.lat {
		concs = append(concs, c)
	}
	sort.Ints(concs)
	return concs
}
