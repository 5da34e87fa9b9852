package security_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
)

// The suite's kube-apiserver authenticates to the webhooks with a client
// certificate (its admission configuration, as the chart README shows), and
// the webhook server requires one (--webhook-client-ca): every Task of the
// suite goes through that, and a hand-made AdmissionReview, the oracle of
// issue 13's item 9, gets no answer.
var (
	clientCAFile string // the CA the webhook server requires
	webhookAddr  string // host:port of the webhook server
	// apiServerCert is the client certificate the API server presents.
	apiServerCert tls.Certificate
)

// requireAPIServerClientCert makes a CA, a client certificate the API
// server presents to every webhook ("*" in its webhook kubeconfig), and
// points the API server at them before it starts.
func requireAPIServerClientCert(env *envtest.Environment) error {
	dir, err := os.MkdirTemp("", "taskgate-security-clientauth-")
	if err != nil {
		return err
	}
	ca, err := kit.NewCA("kube-apiserver-webhook-client-ca")
	if err != nil {
		return err
	}
	cert, err := ca.Client("kube-apiserver")
	if err != nil {
		return err
	}
	if apiServerCert, err = tls.X509KeyPair(cert.CertPEM, cert.KeyPEM); err != nil {
		return err
	}
	clientCAFile = filepath.Join(dir, "client-ca.crt")
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
users:
  - name: "*"
    user:
      client-certificate-data: %s
      client-key-data: %s
`, base64.StdEncoding.EncodeToString(cert.CertPEM), base64.StdEncoding.EncodeToString(cert.KeyPEM))
	admission := `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ValidatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: ` + filepath.Join(dir, "webhook-kubeconfig") + `
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: ` + filepath.Join(dir, "webhook-kubeconfig") + `
`
	for name, data := range map[string]string{"client-ca.crt": string(ca.PEM), "webhook-kubeconfig": kubeconfig, "admission.yaml": admission} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return err
		}
	}
	env.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", filepath.Join(dir, "admission.yaml"))
	return nil
}

// A hand-made AdmissionReview sent straight to the webhook port, with a
// made-up userInfo, gets no answer: without a client certificate, or with
// one the API server's CA did not sign, the TLS handshake fails; the API
// server's own calls go through (every other test here).
func TestWebhookAnswersOnlyTheAPIServer(t *testing.T) {
	review := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1",` +
		`"kind":{"group":"automation.astronetes.io","version":"v1alpha1","kind":"Task"},` +
		`"resource":{"group":"automation.astronetes.io","version":"v1alpha1","resource":"tasks"},` +
		`"operation":"CREATE","namespace":"default","userInfo":{"username":"root","groups":["kubeadm:cluster-admins"]},` +
		`"object":{"apiVersion":"automation.astronetes.io/v1alpha1","kind":"Task","metadata":{"name":"x","namespace":"default"},` +
		`"spec":{"plugin":"custom-image","config":{"image":"busybox:1.36","command":["true"],"clusterRole":"cluster-admin"}}}}}`)
	other, err := kit.NewCA("someone-else")
	must(t, err)
	stranger, err := other.Client("kube-apiserver")
	must(t, err)
	strangerPair, err := tls.X509KeyPair(stranger.CertPEM, stranger.KeyPEM)
	must(t, err)

	tests := []struct {
		name     string
		certs    []tls.Certificate
		answered bool
	}{
		{name: "no client certificate"},
		{name: "certificate of another CA", certs: []tls.Certificate{strangerPair}},
		// The control: the same review with the API server's certificate
		// reaches the webhook, so the refusals above are the handshake's.
		{name: "the API server's certificate", certs: []tls.Certificate{apiServerCert}, answered: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, // the server's identity is not the point here
				Certificates:       tt.certs,
			}}}
			resp, err := c.Post("https://"+webhookAddr+"/validate-automation-astronetes-io-v1alpha1-task", "application/json", bytes.NewReader(review))
			switch {
			case tt.answered && err != nil:
				t.Fatalf("the webhook did not answer a client with the API server's certificate: %v", err)
			case tt.answered:
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("HTTP %d; want 200", resp.StatusCode)
				}
			case err == nil:
				resp.Body.Close()
				t.Fatalf("the webhook answered a hand-made review (HTTP %d); want the TLS handshake refused", resp.StatusCode)
			}
		})
	}

	// The same request through the API server is answered: the admin's
	// Task is admitted and stored.
	ns := newNamespace(t, "")
	must(t, as(t, "root", adminGroup).create(t, newTask(ns, "via-apiserver", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"]}`)))
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
