package webhook

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// RequireClientCert returns the webhook server's TLS option that accepts
// only clients presenting a certificate signed by a CA in caFile (PEM): the
// kube-apiserver, once its admission configuration gives it a client
// certificate for taskgate's webhooks (see the chart README). Without it the
// webhook answers anyone who can reach its port; with it a hand-made
// AdmissionReview gets no answer at all.
func RequireClientCert(caFile string) (func(*tls.Config), error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("webhook client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("webhook client CA %s: no PEM certificate in it", caFile)
	}
	return func(c *tls.Config) {
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}, nil
}
