package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/internal/images"
)

// Config says where and what the node runs.
type Config struct {
	// Dir is the node's state directory (containerd's and the kubelet's
	// data, configurations, logs); the node owns it. An absolute path.
	Dir string
	// Assets holds kubelet, kube-proxy, kube-controller-manager,
	// kube-scheduler and kubectl (`make envtest-node`).
	Assets string
	// Name is the Node's name; default "taskgate-node".
	Name string
	// Network; zero means DefaultNetwork.
	Network Network
	// RepoRoot is this module's root, to build the pause program.
	RepoRoot string
	// TaskgateBinary, when set, is served as images.Taskgate.
	TaskgateBinary string
	// Busybox is the static busybox for the busybox and kubectl images;
	// default /bin/busybox (Debian's busybox-static).
	Busybox string
	Log     logr.Logger
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = "taskgate-node"
	}
	if c.Network == (Network{}) {
		c.Network = DefaultNetwork
	}
	if c.Busybox == "" {
		c.Busybox = "/bin/busybox"
	}
}

// Node is one real node on this machine. Its methods are not safe for
// concurrent use, but Stop may be called after any failure, more than once.
type Node struct {
	cfg        Config
	ca         *authority
	apiCertDir string
	registry   *imageRegistry
	containerd *containerd
	procs      []*proc // started, in order; stopped in reverse
	kubeProxy  *proc
	proxyConf  string
	client     kubernetes.Interface
	stopped    bool
}

// Packages are the Debian packages a node needs (.ci/run installs them).
var Packages = []string{"containerd", "runc", "containernetworking-plugins", "iptables", "conntrack", "busybox-static", "iproute2"}

// CNIBinDirs are where the CNI plugins may be: Debian's package, upstream's.
var CNIBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Check says why this machine cannot run a node (nil when it can, as far as
// can be seen without starting one: Start's probe Pod proves the rest).
func Check(cfg Config) error {
	cfg.defaults()
	var errs []error
	if runtime.GOOS != "linux" {
		return fmt.Errorf("a real node needs Linux, not %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("a real node needs root (containerd, runc, iptables, mounts)"))
	}
	var missing []string
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "iptables", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if cniBinDir() == "" {
		missing = append(missing, "CNI plugins bridge, host-local, portmap, loopback (in "+strings.Join(CNIBinDirs, " or ")+")")
	}
	if _, err := os.Stat(cfg.Busybox); err != nil {
		missing = append(missing, cfg.Busybox)
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing %s: apt-get install -y %s", strings.Join(missing, ", "), strings.Join(Packages, " ")))
	}
	var missingAssets []string
	for _, bin := range []string{"kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		if _, err := os.Stat(filepath.Join(cfg.Assets, bin)); err != nil {
			missingAssets = append(missingAssets, bin)
		}
	}
	if len(missingAssets) > 0 {
		errs = append(errs, fmt.Errorf("no %s in %s: run `make envtest-node`", strings.Join(missingAssets, ", "), cfg.Assets))
	}
	if fs, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(fs), "overlay") {
		errs = append(errs, errors.New("no overlay filesystem (containerd's overlayfs snapshotter)"))
	}
	if others := namedProcesses("containerd", "kubelet", "kube-proxy"); len(others) > 0 {
		errs = append(errs, fmt.Errorf("another node runs here already: %v", others))
	}
	if err := cfg.Network.overlaps(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func cniBinDir() string {
	for _, d := range CNIBinDirs {
		ok := true
		for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
			if _, err := os.Stat(filepath.Join(d, p)); err != nil {
				ok = false
			}
		}
		if ok {
			return d
		}
	}
	return ""
}

// Prepare checks the machine, removes what a crashed node with the same
// Dir left, saves the sysctls the node will change, and gives the node its
// address, which kube-apiserver binds to (ConfigureAPIServer). Stop and,
// once kube-apiserver has stopped, Release undo it; both are safe to call
// when Prepare fails.
func Prepare(ctx context.Context, cfg Config) (*Node, error) {
	cfg.defaults()
	n := &Node{cfg: cfg}
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("node dir %q: not an absolute path", cfg.Dir)
	}
	if err := Check(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := removeLeftovers(ctx, cfg.Dir, false); err != nil {
		return nil, fmt.Errorf("remove what a previous node left: %w", err)
	}
	if err := n.removeData(); err != nil {
		return nil, err
	}
	if err := saveSysctls(filepath.Join(cfg.Dir, "sysctls.json")); err != nil {
		return nil, fmt.Errorf("save sysctls: %w", err)
	}
	var err error
	if n.ca, err = newAuthority(); err != nil {
		return n, err
	}
	return n, cfg.Network.createHostBridge(ctx)
}

// NodeIP is the node's address, and kube-apiserver's.
func (n *Node) NodeIP() string { return n.cfg.Network.NodeIP }

// Name is the Node's name.
func (n *Node) Name() string { return n.cfg.Name }

// ConfigureAPIServer makes env's kube-apiserver one a real node can use:
// it serves on the node's address (loopback is not an address Pods can
// reach) with a certificate that also names the `kubernetes` Service, the
// Node authorizer and the ServiceAccount admission plugin on, and a client
// certificate for the kubelet's logs and exec. Call it before env.Start.
func (n *Node) ConfigureAPIServer(env *envtest.Environment) error {
	api := env.ControlPlane.GetAPIServer()
	if api.CertDir == "" {
		api.CertDir = filepath.Join(n.cfg.Dir, "apiserver")
	}
	n.apiCertDir = api.CertDir
	if err := os.MkdirAll(api.CertDir, 0o700); err != nil {
		return err
	}
	svcIP, err := n.cfg.Network.kubernetesServiceIP()
	if err != nil {
		return err
	}
	ip := net.ParseIP(n.cfg.Network.NodeIP)
	crt, key, err := n.ca.issue("kube-apiserver", nil,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.ParseIP("127.0.0.1"), ip, svcIP}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	clientCrt, clientKey, err := n.ca.issue("kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	caPEM, err := n.ca.certPEM()
	if err != nil {
		return err
	}
	saKey, saPub, err := serviceAccountKeys()
	if err != nil {
		return err
	}
	// envtest makes none of these when apiserver.crt exists, and then
	// trusts SecureServing.CA.
	for name, data := range map[string][]byte{
		"apiserver.crt": crt, "apiserver.key": key, "ca.crt": caPEM,
		"kubelet-client.crt": clientCrt, "kubelet-client.key": clientKey,
		"sa-signer.key": saKey, "sa-signer.crt": saPub,
	} {
		if err := os.WriteFile(filepath.Join(api.CertDir, name), data, 0o600); err != nil {
			return err
		}
	}
	api.SecureServing.CA = caPEM
	port, err := freePort(n.cfg.Network.NodeIP)
	if err != nil {
		return err
	}
	api.SecurePort = port
	api.SecureServing.Address = n.cfg.Network.NodeIP
	args := api.Configure()
	args.Set("advertise-address", n.cfg.Network.NodeIP)
	args.Set("service-cluster-ip-range", n.cfg.Network.ServiceCIDR)
	args.Set("authorization-mode", "Node,RBAC")
	args.Disable("disable-admission-plugins") // envtest turns ServiceAccount off
	args.Set("enable-admission-plugins", "NodeRestriction")
	args.Set("kubelet-client-certificate", filepath.Join(api.CertDir, "kubelet-client.crt"))
	args.Set("kubelet-client-key", filepath.Join(api.CertDir, "kubelet-client.key"))
	args.Set("kubelet-certificate-authority", filepath.Join(api.CertDir, "ca.crt"))
	args.Set("kubelet-preferred-address-types", "InternalIP")
	return nil
}

// Start starts, against env's running control plane,
// kube-controller-manager, kube-scheduler, the image registry with the
// images, containerd, the kubelet and kube-proxy, waits until the Node is
// Ready, and runs a probe Pod that must print what it was told: a node
// that cannot run a container fails here, not in the first test.
func (n *Node) Start(ctx context.Context, env *envtest.Environment) error {
	if n.apiCertDir == "" {
		return errors.New("ConfigureAPIServer was not called before the control plane started")
	}
	kc := func(file, user string, groups ...string) (string, error) {
		u, err := env.AddUser(envtest.User{Name: user, Groups: groups}, nil)
		if err != nil {
			return "", fmt.Errorf("user %s: %w", user, err)
		}
		data, err := u.KubeConfig()
		if err != nil {
			return "", fmt.Errorf("kubeconfig of %s: %w", user, err)
		}
		path := filepath.Join(n.cfg.Dir, file+".kubeconfig")
		return path, os.WriteFile(path, data, 0o600)
	}
	admin, err := kc("admin", "taskgate-node-admin", "system:masters")
	if err != nil {
		return err
	}
	if n.client, err = clientFor(admin); err != nil {
		return err
	}
	log := n.cfg.Log

	kcmConf, err := kc("kube-controller-manager", ControllerManagerUser)
	if err != nil {
		return err
	}
	kcm, err := startController(ctx, n.cfg.Dir, n.cfg.Assets, "kube-controller-manager", kcmConf,
		"--use-service-account-credentials=true",
		"--root-ca-file="+filepath.Join(n.apiCertDir, "ca.crt"),
		"--service-account-private-key-file="+filepath.Join(n.apiCertDir, "sa-signer.key"))
	n.add(kcm)
	if err != nil {
		return err
	}
	schedConf, err := kc("kube-scheduler", SchedulerUser)
	if err != nil {
		return err
	}
	sched, err := startController(ctx, n.cfg.Dir, n.cfg.Assets, "kube-scheduler", schedConf)
	n.add(sched)
	if err != nil {
		return err
	}
	log.Info("kube-controller-manager and kube-scheduler ready")

	if n.registry, err = startRegistry(); err != nil {
		return err
	}
	if err := n.pushImages(ctx); err != nil {
		return err
	}
	log.Info("images built and served", "registry", n.registry.addr)

	cniConf := filepath.Join(n.cfg.Dir, "cni")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		return err
	}
	if err := n.cfg.Network.writeCNIConfig(filepath.Join(cniConf, "10-taskgate.conflist")); err != nil {
		return err
	}
	n.containerd, err = startContainerd(ctx, n.cfg.Dir, cniBinDir(), cniConf, n.registry.addr)
	if n.containerd.proc != nil {
		n.add(n.containerd.proc)
	}
	if err != nil {
		return err
	}
	log.Info("containerd ready", "socket", n.containerd.socket)

	kubeletConf, err := kc("kubelet", "system:node:"+n.cfg.Name, nodesGroup)
	if err != nil {
		return err
	}
	if err := n.writeKubeletServingCert(); err != nil {
		return err
	}
	kubelet, err := startKubelet(ctx, n.cfg.Dir, n.cfg.Assets, n.cfg.Name, n.cfg.Network.NodeIP, kubeletConf,
		filepath.Join(n.apiCertDir, "ca.crt"), n.containerd.socket)
	n.add(kubelet)
	if err != nil {
		return err
	}
	proxyConf, err := kc("kube-proxy", kubeProxyUser)
	if err != nil {
		return err
	}
	n.kubeProxy, n.proxyConf, err = startKubeProxy(ctx, n.cfg.Dir, n.cfg.Assets, n.cfg.Name, n.cfg.Network.NodeIP, n.cfg.Network.PodCIDR, proxyConf)
	n.add(n.kubeProxy)
	if err != nil {
		return err
	}
	if err := n.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	log.Info("node Ready", "node", n.cfg.Name)
	return n.probe(ctx)
}

func (n *Node) add(p *proc) {
	if p != nil {
		n.procs = append(n.procs, p)
	}
}

// Exited receives the name and log of the first component that exits on
// its own.
func (n *Node) Exited() <-chan string {
	ch := make(chan string, len(n.procs))
	for _, p := range n.procs {
		go func() {
			<-p.exited
			ch <- p.name + " (log " + p.logPath + ")"
		}()
	}
	return ch
}

// Logs is the directory of the components' logs.
func (n *Node) Logs() string { return n.cfg.Dir }

func (n *Node) writeKubeletServingCert() error {
	crt, key, err := n.ca.issue("system:node:"+n.cfg.Name, []string{nodesGroup}, []string{n.cfg.Name},
		[]net.IP{net.ParseIP(n.cfg.Network.NodeIP)}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	dir := filepath.Join(n.cfg.Dir, "kubelet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return errors.Join(os.WriteFile(filepath.Join(dir, "kubelet-serving.crt"), crt, 0o600),
		os.WriteFile(filepath.Join(dir, "kubelet-serving.key"), key, 0o600))
}

// pushImages builds the images and serves them.
func (n *Node) pushImages(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "taskgate-pause-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pauseBin, err := images.BuildPause(ctx, n.cfg.RepoRoot, tmp)
	if err != nil {
		return err
	}
	pause, err := images.PauseImage(pauseBin)
	if err != nil {
		return err
	}
	busybox, err := images.BusyboxImage(ctx, n.cfg.Busybox)
	if err != nil {
		return err
	}
	kubectl, err := images.KubectlImage(ctx, filepath.Join(n.cfg.Assets, "kubectl"), n.cfg.Busybox)
	if err != nil {
		return err
	}
	if err := errors.Join(n.registry.push(ctx, images.Pause, pause), n.registry.push(ctx, images.Busybox, busybox),
		n.registry.push(ctx, images.Kubectl, kubectl)); err != nil {
		return err
	}
	if n.cfg.TaskgateBinary == "" {
		return nil
	}
	tg, err := images.TaskgateImage(n.cfg.TaskgateBinary)
	if err != nil {
		return err
	}
	return n.registry.push(ctx, images.Taskgate, tg)
}

func clientFor(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return kubernetes.NewForConfig(cfg)
}

// removeData deletes the node's data directories (never its logs'
// directory itself), once nothing is mounted there.
func (n *Node) removeData() error {
	var errs []error
	for _, d := range []string{"containerd", "kubelet", "cni", "apiserver", "kube-controller-manager", "kube-scheduler"} {
		errs = append(errs, os.RemoveAll(filepath.Join(n.cfg.Dir, d)))
	}
	return errors.Join(errs...)
}
