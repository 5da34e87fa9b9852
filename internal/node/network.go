package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// The node's network. kube-apiserver advertises, and the kubelet reports,
// an address that is not loopback (Pods reach the API server through the
// `kubernetes` Service, whose endpoint is that address), so the node gets
// one on a bridge of its own with no ports: local to this machine, reachable
// from the Pods through their gateway, never from outside. The Pods get a
// bridge CNI network; both interfaces carry the node's names, so a cleanup
// after a crash knows what is ours.
const (
	hostBridge = "tgnode0"
	podBridge  = "tgcni0"
)

// Network says where the node and its Pods live.
type Network struct {
	// NodeIP is the node's address on its own bridge, and the API server's.
	NodeIP string
	// NodeCIDR is NodeIP's prefix length, e.g. 24.
	NodePrefix int
	// PodCIDR is the range the bridge CNI plugin hands Pods addresses from.
	PodCIDR string
	// ServiceCIDR is kube-apiserver's --service-cluster-ip-range (envtest's).
	ServiceCIDR string
}

// DefaultNetwork is private ranges unlikely to meet a machine's own.
var DefaultNetwork = Network{NodeIP: "10.250.0.1", NodePrefix: 24, PodCIDR: "10.251.0.0/24", ServiceCIDR: "10.0.0.0/24"}

// kubernetesServiceIP is the first address of the service range, which
// kube-apiserver gives the `kubernetes` Service.
func (n Network) kubernetesServiceIP() (net.IP, error) {
	_, cidr, err := net.ParseCIDR(n.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("service CIDR %q: %w", n.ServiceCIDR, err)
	}
	ip := cidr.IP.To4()
	if ip == nil {
		return nil, fmt.Errorf("service CIDR %q: IPv4 only", n.ServiceCIDR)
	}
	out := make(net.IP, 4)
	copy(out, ip)
	out[3]++
	return out, nil
}

// overlaps reports a range of ours that an interface of the machine
// already uses (not the node's own bridges, which a crashed run may have
// left: Prepare removes them).
func (n Network) overlaps() error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	var addrs []net.Addr
	for _, i := range ifaces {
		if i.Name == hostBridge || i.Name == podBridge {
			continue
		}
		a, err := i.Addrs()
		if err != nil {
			return err
		}
		addrs = append(addrs, a...)
	}
	for _, c := range []string{fmt.Sprintf("%s/%d", n.NodeIP, n.NodePrefix), n.PodCIDR, n.ServiceCIDR} {
		_, ours, err := net.ParseCIDR(c)
		if err != nil {
			return fmt.Errorf("range %q: %w", c, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if ok && (ours.Contains(ipn.IP) || ipn.Contains(ours.IP)) {
				return fmt.Errorf("range %s meets this machine's address %s", c, ipn)
			}
		}
	}
	return nil
}

// createHostBridge gives the node its address.
func (n Network) createHostBridge(ctx context.Context) error {
	for _, args := range [][]string{
		{"link", "add", hostBridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", n.NodeIP, n.NodePrefix), "dev", hostBridge},
		{"link", "set", hostBridge, "up"},
	} {
		if _, err := run(ctx, "ip", args...); err != nil {
			return fmt.Errorf("the node's address: %w", err)
		}
	}
	return nil
}

// writeCNIConfig writes the Pod network for containerd's CRI plugin
// (containerd adds the loopback interface itself). No masquerading: Pods
// talk only to this machine (the API server, webhooks) and each other.
func (n Network) writeCNIConfig(path string) error {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "taskgate-node",
		"plugins": []map[string]any{
			{
				"type": "bridge", "bridge": podBridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": n.PodCIDR}}}, "routes": []map[string]string{{"dst": "0.0.0.0/0"}}},
			},
			{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// ourLinks are the interfaces of the node on this machine: its two bridges
// and the Pods' veth ends attached to the Pod bridge.
func ourLinks(ctx context.Context) []string {
	var links []string
	for _, l := range []string{hostBridge, podBridge} {
		if _, err := net.InterfaceByName(l); err == nil {
			links = append(links, l)
		}
	}
	if out, err := run(ctx, "ip", "-o", "link", "show", "master", podBridge); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				links = append(links, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
			}
		}
	}
	return links
}

// deleteLinks deletes the node's interfaces; with keepAddress, not the
// bridge holding the node's (and kube-apiserver's) address.
func deleteLinks(ctx context.Context, keepAddress bool) error {
	links := ourLinks(ctx)
	if keepAddress {
		links = slices.DeleteFunc(links, func(l string) bool { return l == hostBridge })
	}
	// veths first: deleting one end removes its peer in the Pod's netns.
	for i := len(links) - 1; i >= 0; i-- {
		if _, err := run(ctx, "ip", "link", "del", links[i]); err != nil {
			if _, e := net.InterfaceByName(links[i]); e == nil {
				return err
			}
		}
	}
	return nil
}

// chainPrefixes name the iptables chains the kubelet, kube-proxy and the
// CNI plugins create.
var chainPrefixes = []string{"KUBE-", "CNI-"}

func ours(chain string) bool {
	for _, p := range chainPrefixes {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

// iptablesChains lists the chains of ours in every table, as
// "iptables/nat/KUBE-SERVICES".
func iptablesChains() []string {
	var chains []string
	for _, bin := range []string{"iptables", "ip6tables"} {
		out, err := exec.Command(bin + "-save").Output()
		if err != nil {
			continue
		}
		table := ""
		for _, line := range strings.Split(string(out), "\n") {
			switch {
			case strings.HasPrefix(line, "*"):
				table = line[1:]
			case strings.HasPrefix(line, ":"):
				if name := strings.Fields(line[1:])[0]; ours(name) {
					chains = append(chains, bin+"/"+table+"/"+name)
				}
			}
		}
	}
	return chains
}

// removeChains removes every chain of ours, and every rule in or jumping
// to one, from every table where there is one: the table is saved,
// filtered line by line (a chain's declaration, its rules, the rules that
// name it) and restored whole, atomically, with everything else as it was.
func removeChains(ctx context.Context) error {
	for _, bin := range []string{"iptables", "ip6tables"} {
		out, err := exec.CommandContext(ctx, bin+"-save").Output()
		if err != nil {
			continue // no ip6tables on this machine
		}
		tables := map[string][]string{}
		dirty := map[string]bool{}
		var order []string
		table := ""
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "*") {
				table = line[1:]
				order = append(order, table)
			}
			if table == "" {
				continue
			}
			if mentionsOurs(line) {
				dirty[table] = true
				continue
			}
			tables[table] = append(tables[table], line)
		}
		for _, t := range order {
			if !dirty[t] {
				continue
			}
			cmd := exec.CommandContext(ctx, bin+"-restore", "-T", t)
			cmd.Stdin = strings.NewReader(strings.Join(tables[t], "\n") + "\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s-restore -T %s: %w: %s", bin, t, err, out)
			}
		}
	}
	return nil
}

// mentionsOurs reports an iptables-save line that declares a chain of ours,
// appends to one, or jumps or goes to one.
func mentionsOurs(line string) bool {
	f := strings.Fields(line)
	if len(f) == 0 {
		return false
	}
	if strings.HasPrefix(f[0], ":") {
		return ours(f[0][1:])
	}
	if f[0] != "-A" || len(f) < 2 {
		return false
	}
	if ours(f[1]) {
		return true
	}
	for i := 2; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && ours(f[i+1]) {
			return true
		}
	}
	return false
}
