package kit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/astronetes/taskgate/test/testutil"
)

// WebhookServer is controller-runtime's webhook server, the one the manager
// runs, serving on 127.0.0.1 with the certificate in CertDir (reloaded by
// its certwatcher when the files change).
type WebhookServer struct {
	Server  crwebhook.Server
	Addr    string // 127.0.0.1:port
	CertDir string
	stop    context.CancelFunc
	done    chan error
}

// StartWebhookServer serves handlers (path → handler) until Stop.
func StartWebhookServer(certDir string, handlers map[string]http.Handler) (*WebhookServer, error) {
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir})
	for path, h := range handlers {
		srv.Register(path, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ws := &WebhookServer{Server: srv, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		CertDir: certDir, stop: cancel, done: make(chan error, 1)}
	go func() { ws.done <- srv.Start(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for srv.StartedChecker()(nil) != nil {
		select {
		case err := <-ws.done:
			cancel()
			return nil, fmt.Errorf("webhook server: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			ws.Stop()
			return nil, errors.New("webhook server did not start in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ws, nil
}

// URL is the base URL of the server.
func (ws *WebhookServer) URL() string { return "https://" + ws.Addr }

// Stop stops the server and waits for it.
func (ws *WebhookServer) Stop() {
	ws.stop()
	select {
	case <-ws.done:
	case <-time.After(15 * time.Second):
	}
}

// PresentedSerial is the serial number of the certificate the server at
// addr presents to a new connection that trusts roots.
func PresentedSerial(addr string, roots []byte) (*big.Int, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(roots)
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// NewCertDir makes a directory holding a serving certificate issued by ca.
func NewCertDir(ca *CA) (string, *ServingCert, error) {
	dir, err := os.MkdirTemp("", "taskgate-certs-")
	if err != nil {
		return "", nil, err
	}
	sc, err := ca.Serve()
	if err == nil {
		err = sc.Install(dir)
	}
	return dir, sc, err
}

// Webhooks are the two webhook configurations of config/webhook/manifests.yaml;
// a nil one is absent from the cluster.
type Webhooks struct {
	Mutating   *admissionregv1.MutatingWebhookConfiguration
	Validating *admissionregv1.ValidatingWebhookConfiguration
}

// LoadWebhooks reads root/config/webhook/manifests.yaml
// (testutil.ReadWebhookConfigurations): one mutating and one validating
// configuration, of one webhook each.
func LoadWebhooks(root string) (Webhooks, error) {
	path := filepath.Join(root, "config", "webhook", "manifests.yaml")
	m, v, err := testutil.ReadWebhookConfigurations(path)
	if err != nil {
		return Webhooks{}, err
	}
	if len(m) != 1 || len(v) != 1 || len(m[0].Webhooks) != 1 || len(v[0].Webhooks) != 1 {
		return Webhooks{}, fmt.Errorf("%s: want one mutating and one validating webhook", path)
	}
	return Webhooks{Mutating: m[0], Validating: v[0]}, nil
}

// Point returns copies of the configurations calling base+path with
// caBundle; an empty path leaves that configuration out.
func (w Webhooks) Point(base string, caBundle []byte, mutatePath, validatePath string) Webhooks {
	var out Webhooks
	if mutatePath != "" {
		out.Mutating = w.Mutating.DeepCopy()
		url := base + mutatePath
		out.Mutating.Webhooks[0].ClientConfig = admissionregv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
	}
	if validatePath != "" {
		out.Validating = w.Validating.DeepCopy()
		url := base + validatePath
		out.Validating.Webhooks[0].ClientConfig = admissionregv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
	}
	return out
}

// Apply makes the cluster hold exactly w: configurations in w are created or
// updated, the others deleted. names are the configurations' names (from
// LoadWebhooks) so absent ones can be deleted.
func (w Webhooks) Apply(ctx context.Context, c client.Client, names Webhooks) error {
	var v, m client.Object
	if w.Validating != nil {
		v = w.Validating.DeepCopy()
	}
	if w.Mutating != nil {
		m = w.Mutating.DeepCopy()
	}
	if err := apply(ctx, c, v, names.Validating.DeepCopy()); err != nil {
		return fmt.Errorf("validating webhook configuration: %w", err)
	}
	if err := apply(ctx, c, m, names.Mutating.DeepCopy()); err != nil {
		return fmt.Errorf("mutating webhook configuration: %w", err)
	}
	return nil
}

// ApplyObject makes the cluster hold want: it creates or updates it, or,
// when want is nil, deletes existing (named as the object to remove; an
// absent one is no error). existing is read into.
func ApplyObject(ctx context.Context, c client.Client, want, existing client.Object) error {
	return apply(ctx, c, want, existing)
}

// apply creates or updates want, or deletes existing when want is nil.
func apply(ctx context.Context, c client.Client, want, existing client.Object) error {
	if want == nil {
		return client.IgnoreNotFound(c.Delete(ctx, existing))
	}
	err := c.Get(ctx, client.ObjectKeyFromObject(want), existing)
	switch {
	case apierrors.IsNotFound(err):
		return c.Create(ctx, want)
	case err != nil:
		return err
	}
	want.SetResourceVersion(existing.GetResourceVersion())
	return c.Update(ctx, want)
}
