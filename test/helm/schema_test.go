package helm_test

import (
	"strings"
	"testing"
)

// TestValuesSchema: values.schema.json makes `helm lint --strict` (and
// install, upgrade, template) refuse a value of the wrong type, outside its
// enum or under an unknown key, naming where it is, while everything the
// chart documents still passes.
func TestValuesSchema(t *testing.T) {
	lint := func(args ...string) (string, error) {
		return helm(t, append([]string{"lint", "--strict", chartDir()}, args...)...)
	}
	if out, err := lint(); err != nil {
		t.Fatalf("helm lint --strict with the defaults: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // the field path in the schema error
	}{
		{name: "certs.mode outside its enum", args: []string{"--set", "certs.mode=bogus"}, want: "at '/certs/mode'"},
		{name: "replicaCount not an integer", args: []string{"--set", "replicaCount=two"}, want: "at '/replicaCount': got string, want integer"},
		{name: "unknown top-level key", args: []string{"--set", "replicas=2"}, want: "additional properties 'replicas' not allowed"},
		{name: "unknown nested key", args: []string{"--set", "webhook.timeout=5"}, want: "at '/webhook': additional properties 'timeout' not allowed"},
		{name: "typo under image", args: []string{"--set", "image.digests=sha256:00"}, want: "at '/image': additional properties 'digests'"},
		{name: "timeoutSeconds above the API server's limit", args: []string{"--set", "webhook.timeoutSeconds=31"}, want: "at '/webhook/timeoutSeconds'"},
		{name: "port not a number", args: []string{"--set", "metrics.port=http"}, want: "at '/metrics/port'"},
		{name: "actAs outside its enum", args: []string{"--set", "actAs=root"}, want: "at '/actAs'"},
		{name: "logLevel outside its enum", args: []string{"--set", "logLevel=trace"}, want: "at '/logLevel'"},
		{name: "digest not a digest", args: []string{"--set", "image.digest=latest"}, want: "at '/image/digest'"},
		{name: "duration not a duration", args: []string{"--set", "controller.finishedTaskTTL=a day"}, want: "at '/controller/finishedTaskTTL'"},
		{name: "extraArgs not strings", args: []string{"--set-json", "extraArgs=[1]"}, want: "at '/extraArgs/0'"},
		{name: "extraEnv without a name", args: []string{"--set-json", `extraEnv=[{"value":"x"}]`}, want: "at '/extraEnv/0'"},
		{name: "spread constraint without topologyKey", args: []string{"--set-json", `topologySpreadConstraints=[{"maxSkew":1,"whenUnsatisfiable":"DoNotSchedule"}]`}, want: "at '/topologySpreadConstraints/0'"},
		{name: "selector with an unknown key", args: []string{"--set-json", `webhook.namespaceSelector={"matchLabel":{"a":"b"}}`}, want: "at '/webhook/namespaceSelector'"},
		{name: "crds.keep not a bool", args: []string{"--set", "crds.keep=yes"}, want: "at '/crds/keep'"},
		{name: "prometheusRule duration", args: []string{"--set", "prometheusRule.stuckPendingFor=soon"}, want: "at '/prometheusRule/stuckPendingFor'"},
		{name: "ratio above 1", args: []string{"--set", "prometheusRule.webhookErrorRatio=1.5"}, want: "at '/prometheusRule/webhookErrorRatio'"},
		{name: "issuer kind", args: []string{"--set", "certs.mode=cert-manager", "--set", "certs.certManager.issuerRef.kind=Foo"}, want: "at '/certs/certManager/issuerRef/kind'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := lint(tc.args...)
			if err == nil {
				t.Fatalf("helm lint --strict %v passed:\n%s", tc.args, out)
			}
			if text := out + err.Error(); !strings.Contains(text, tc.want) {
				t.Errorf("helm lint --strict %v does not say %q:\n%s", tc.args, tc.want, text)
			}
		})
	}
	// Forms the chart accepts and documents.
	for _, args := range [][]string{
		{"--set", "controller.finishedTaskTTL=0"},
		{"--set", "controller.finishedTaskTTL=24h"},
		{"--set", "webhook.accessReviewCacheTTL=0"},
		{"--set", "synchronizationCRD.install=true"},
		{"--set", "synchronizationCRD.install=auto"},
		{"--set", "podDisruptionBudget.minAvailable=50%"},
		{"--set", "image.digest=sha256:" + strings.Repeat("ab", 32)},
		{"--set", "global.imageRegistry=mirror.example.com", "--set", "global.otherChartsKey=x"},
		{"--set", "podSecurityContext.fsGroup=2000", "--set", "securityContext.runAsUser=1000"},
		{"--set", "certs.mode=cert-manager", "--set", "certs.certManager.issuerRef.name=ca", "--set", "certs.certManager.issuerRef.kind=ClusterIssuer"},
		{"--set-json", `webhook.namespaceSelector={"matchExpressions":[{"key":"team","operator":"Exists"}]}`},
		// --set passes a float as a string.
		{"--set", "prometheusRule.webhookErrorRatio=0.2", "--set", "prometheusRule.webhookLatencySeconds=2.5"},
		{"--set-json", `prometheusRule={"webhookErrorRatio":0.01,"webhookLatencySeconds":3}`},
	} {
		if out, err := lint(args...); err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s", args, err, out)
		}
	}
}
