package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"text/template"
	"time"
)

// kubeletConfig is the kubelet's configuration. failCgroupV1 false: the
// machines here have cgroup v1, which kubelet 1.35+ refuses by default.
// Images are built here and cannot be pulled again once removed, so image
// garbage collection and disk eviction never start. The kubelet serves
// logs and exec to kube-apiserver only, which shows the client certificate
// the node's CA signed.
var kubeletConfig = template.Must(template.New("kubelet").Parse(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {{.NodeIP}}
port: {{.Port}}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {{.HealthzPort}}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {{.ClientCA}}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://{{.Socket}}
podLogsDirectory: {{.Dir}}/pod-logs
tlsCertFile: {{.Dir}}/kubelet-serving.crt
tlsPrivateKeyFile: {{.Dir}}/kubelet-serving.key
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 8760h
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
serializeImagePulls: false
syncFrequency: 10s
nodeStatusReportFrequency: 10s
protectKernelDefaults: false
resolvConf: /etc/resolv.conf
`))

type kubeletParams struct {
	Dir, NodeIP, ClientCA, Socket string
	Port, HealthzPort             int
}

// startKubelet starts the kubelet and waits for its /healthz.
func startKubelet(ctx context.Context, dir, assets, name, nodeIP, kubeconfig, clientCA, socket string) (*proc, error) {
	kdir := filepath.Join(dir, "kubelet")
	if err := os.MkdirAll(filepath.Join(kdir, "pod-logs"), 0o755); err != nil {
		return nil, err
	}
	port, err := freePort(nodeIP)
	if err != nil {
		return nil, err
	}
	healthz, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(kdir, "config.yaml")
	f, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	err = kubeletConfig.Execute(f, kubeletParams{Dir: kdir, NodeIP: nodeIP, ClientCA: clientCA, Socket: socket, Port: port, HealthzPort: healthz})
	if err := errors.Join(err, f.Close()); err != nil {
		return nil, fmt.Errorf("kubelet config: %w", err)
	}
	p, err := startProc("kubelet", filepath.Join(dir, "kubelet.log"), nil, filepath.Join(assets, "kubelet"),
		"--config="+conf, "--kubeconfig="+kubeconfig, "--root-dir="+filepath.Join(kdir, "root"),
		"--cert-dir="+filepath.Join(kdir, "pki"), "--hostname-override="+name, "--node-ip="+nodeIP, "--v=1")
	if err != nil {
		return nil, err
	}
	return p, p.waitReady(ctx, 90*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz)))
}

// kubeProxyConfig: iptables mode, the conntrack settings left as they are
// (0), no localhost NodePorts (they need route_localnet), NodePorts on the
// node's own address only.
var kubeProxyConfig = template.Must(template.New("kube-proxy").Parse(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: {{.Kubeconfig}}
hostnameOverride: {{.Name}}
bindAddress: {{.NodeIP}}
healthzBindAddress: 127.0.0.1:{{.HealthzPort}}
metricsBindAddress: 127.0.0.1:{{.MetricsPort}}
clusterCIDR: {{.PodCIDR}}
nodePortAddresses: ["{{.NodeIP}}/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  syncPeriod: 30s
  minSyncPeriod: 0s
`))

// startKubeProxy writes the configuration (also for `kube-proxy --cleanup`)
// and starts kube-proxy.
func startKubeProxy(ctx context.Context, dir, assets, name, nodeIP, podCIDR, kubeconfig string) (*proc, string, error) {
	healthz, err := freePort("127.0.0.1")
	if err != nil {
		return nil, "", err
	}
	metrics, err := freePort("127.0.0.1")
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(dir, "kube-proxy.yaml")
	f, err := os.Create(conf)
	if err != nil {
		return nil, "", err
	}
	err = kubeProxyConfig.Execute(f, map[string]any{"Kubeconfig": kubeconfig, "Name": name, "NodeIP": nodeIP,
		"HealthzPort": healthz, "MetricsPort": metrics, "PodCIDR": podCIDR})
	if err := errors.Join(err, f.Close()); err != nil {
		return nil, "", fmt.Errorf("kube-proxy config: %w", err)
	}
	p, err := startProc("kube-proxy", filepath.Join(dir, "kube-proxy.log"), nil, filepath.Join(assets, "kube-proxy"), "--config="+conf, "--v=1")
	if err != nil {
		return nil, conf, err
	}
	return p, conf, p.waitReady(ctx, 60*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz)))
}

func httpOK(url string) func() error {
	return httpOKWith(&http.Client{Timeout: 2 * time.Second}, url)
}

// httpOKWith is a readiness check: a GET of url through hc answers 200.
func httpOKWith(hc *http.Client, url string) func() error {
	return func() error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
