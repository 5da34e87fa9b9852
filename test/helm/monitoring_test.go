package helm_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// exportedMetrics are the series the manager exports, read from the code
// that registers them, so a rule or panel on a renamed metric fails here.
// controller-runtime's webhook and certwatcher metrics come with its
// webhook server; cert-manager's with cert-manager; up with Prometheus.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{
		"up": true,
		"controller_runtime_webhook_requests_total":            true,
		"controller_runtime_webhook_latency_seconds_bucket":    true,
		"certwatcher_read_certificate_errors_total":            true,
		"certmanager_certificate_expiration_timestamp_seconds": true,
	}
	name := regexp.MustCompile(`"(taskgate_[a-z_]+)"`)
	for _, file := range []string{"webhook/metrics.go", "controller/metrics.go", "controller/metrics_tasks.go"} {
		src, err := os.ReadFile(filepath.Join(repoRoot(), file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllStringSubmatch(string(src), -1) {
			known[m[1]] = true
			known[m[1]+"_bucket"] = true // histograms
		}
	}
	return known
}

// promQL is Prometheus's own parser with its default functions.
var promQL = parser.NewParser(parser.Options{})

// checkPromQL parses expr with Prometheus's own parser and checks that every
// series it selects is one the manager (or the named exporters) exports.
func checkPromQL(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	e, err := promQL.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v\n%s", where, err, expr)
		return
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && !known[m.Value] {
				t.Errorf("%s: selects %s, which nothing exports", where, m.Value)
			}
		}
		return nil
	})
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func rules(t *testing.T, u *unstructured.Unstructured) []rule {
	t.Helper()
	var spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	data, _ := json.Marshal(u.Object["spec"])
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range spec.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

func TestTemplatePrometheusRule(t *testing.T) {
	if got := render(t, "--set", "metrics.serviceMonitor.enabled=true").find("PrometheusRule"); len(got) != 0 {
		t.Fatalf("rendered %d PrometheusRules by default, want none", len(got))
	}
	known := exportedMetrics(t)
	always := []string{"TaskgateCertificateReloadFailing"}
	admission := []string{"TaskgateDown", "TaskgateWebhookErrors", "TaskgateWebhookHTTPErrors", "TaskgateWebhookSlow"}
	tasks := []string{"TaskgateTasksFailing", "TaskgateTasksStuckPending", "TaskgateTasksStuckRunning"}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{name: "defaults", want: slices.Concat(always, admission, tasks)},
		{name: "cert-manager", args: []string{"--set", "certs.mode=cert-manager"},
			want: slices.Concat(always, admission, []string{"TaskgateCertificateExpiring"}, tasks)},
		{name: "webhooks only", args: []string{"--set", "enableController=false"}, want: slices.Concat(always, admission)},
		{name: "controller only", args: []string{"--set", "enableWebhooks=false"}, want: slices.Concat(always, tasks)},
		{name: "thresholds", args: []string{"--set", "prometheusRule.webhookErrorRatio=0.2", "--set", "prometheusRule.webhookLatencySeconds=0.5",
			"--set", "prometheusRule.stuckPendingFor=1h", "--set", "prometheusRule.stuckRunningFor=1d", "--set", "prometheusRule.labels.release=kps"},
			want: slices.Concat(always, admission, tasks)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, append([]string{"--set", "prometheusRule.enabled=true"}, tc.args...)...)
			pr := m.find("PrometheusRule")
			if len(pr) != 1 || pr[0].GetAPIVersion() != "monitoring.coreos.com/v1" || pr[0].GetNamespace() != releaseNS {
				t.Fatalf("want one monitoring.coreos.com/v1 PrometheusRule in %s, got %v", releaseNS, pr)
			}
			var names []string
			for _, r := range rules(t, pr[0]) {
				names = append(names, r.Alert)
				checkPromQL(t, r.Alert, r.Expr, known)
				if r.For != "" {
					if _, err := model.ParseDuration(r.For); err != nil {
						t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
					}
				}
				// Every series of this release only: the job and namespace the ServiceMonitor gives them.
				if !strings.Contains(r.Expr, `job="taskgate-metrics",namespace="taskgate-system"`) && r.Alert != "TaskgateCertificateExpiring" {
					t.Errorf("%s is not scoped to the release's metrics: %s", r.Alert, r.Expr)
				}
				if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s lacks a severity, summary or description: %+v", r.Alert, r)
				}
			}
			slices.Sort(names)
			slices.Sort(tc.want)
			if !slices.Equal(names, tc.want) {
				t.Errorf("alerts %v, want %v", names, tc.want)
			}
			if tc.name == "thresholds" {
				var text strings.Builder
				for _, r := range rules(t, pr[0]) {
					fmt.Fprintf(&text, "%s for %s\n", r.Expr, r.For)
				}
				for _, want := range []string{"> 0.2", "> 0.5", "[1h:1m]", "[1d]", "for 1d"} {
					if !strings.Contains(text.String(), want) {
						t.Errorf("thresholds: %q missing from the rules", want)
					}
				}
				if pr[0].GetLabels()["release"] != "kps" {
					t.Errorf("labels %v lack prometheusRule.labels", pr[0].GetLabels())
				}
			}
		})
	}
	if _, err := helm(t, "template", releaseName, chartDir(), "--set", "prometheusRule.enabled=true", "--set", "metrics.enabled=false"); err == nil {
		t.Error("a PrometheusRule without metrics rendered")
	}
}

// grafanaVars stand in for the dashboard's variables as Grafana fills them in.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$namespace", "taskgate-system", "$job", "taskgate-metrics")

func TestTemplateGrafanaDashboard(t *testing.T) {
	if got := render(t).find("ConfigMap"); len(got) != 0 {
		t.Fatalf("defaults render %d ConfigMaps", len(got))
	}
	m := render(t, "--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.annotations.grafana_folder=Platform")
	cm := one[corev1.ConfigMap](t, m, "ConfigMap")
	if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Platform" {
		t.Errorf("labels %v annotations %v: the sidecar finds dashboards by label", cm.Labels, cm.Annotations)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["taskgate.json"]), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) < 8 {
		t.Fatalf("dashboard uid %q, %d panels", dash.UID, len(dash.Panels))
	}
	var vars []string
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Name)
	}
	if !slices.Equal(vars, []string{"datasource", "namespace", "job"}) {
		t.Errorf("variables %v", vars)
	}
	known := exportedMetrics(t)
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkPromQL(t, "panel "+p.Title, grafanaVars.Replace(tg.Expr), known)
			for name := range known {
				if strings.Contains(tg.Expr, name+"{") {
					used[name] = true
				}
			}
		}
	}
	// Every metric taskgate itself exports has a panel.
	for name := range known {
		if strings.HasPrefix(name, "taskgate_") && !strings.HasSuffix(name, "_bucket") && !used[name] && !used[name+"_bucket"] {
			t.Errorf("no panel shows %s", name)
		}
	}
}
