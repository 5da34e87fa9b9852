package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tunedSysctls are the kernel settings the kubelet (setupKernelTunables,
// with protectKernelDefaults off), kube-proxy and the bridge CNI plugin
// change. Prepare saves them into the state dir; Stop, or the next Prepare
// after a crash, puts them back.
var tunedSysctls = []string{
	"kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory", "vm.panic_on_oom",
	"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes",
	"net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet",
	"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
	"net.netfilter.nf_conntrack_max",
	"net.netfilter.nf_conntrack_tcp_timeout_established", "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// readSysctls reads those of names that exist on this kernel.
func readSysctls(names []string) map[string]string {
	vals := map[string]string{}
	for _, n := range names {
		if b, err := os.ReadFile(sysctlPath(n)); err == nil {
			vals[n] = strings.TrimSpace(string(b))
		}
	}
	return vals
}

func saveSysctls(file string) error {
	data, err := json.MarshalIndent(readSysctls(tunedSysctls), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o600)
}

// restoreSysctls puts back the values saved in file and removes it.
func restoreSysctls(file string) error {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var vals map[string]string
	if err := json.Unmarshal(data, &vals); err != nil {
		return fmt.Errorf("saved sysctls %s: %w", file, err)
	}
	var errs []error
	for n, v := range vals {
		cur, err := os.ReadFile(sysctlPath(n))
		if err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(sysctlPath(n), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", n, v, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.Remove(file))
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points under any of dirs, deepest first.
func mountsUnder(dirs ...string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		for _, d := range dirs {
			if mp == d || strings.HasPrefix(mp, d+"/") {
				mounts = append(mounts, mp)
				break
			}
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline
// and backslash.
func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func unmountAll(dirs ...string) error {
	var errs []error
	for _, mp := range mountsUnder(dirs...) {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// nodeProcesses lists the processes of a node: those whose command line
// names dir (containerd, its shims, the kubelet, kube-proxy) and those in
// the kubelet's cgroups (the containers), as "pid comm".
func nodeProcesses(dir string) map[int]string {
	procs := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == os.Getppid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cgroup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if (dir != "" && strings.Contains(string(cmdline), dir)) || strings.Contains(string(cgroup), ":/kubepods") {
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			procs[pid] = strings.TrimSpace(string(comm))
		}
	}
	return procs
}

// killProcesses SIGKILLs the node's processes until none is left.
func killProcesses(dir string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		procs := nodeProcesses(dir)
		if len(procs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of the node survive SIGKILL: %v", procs)
		}
		for pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cgroupRoots are the kubelet's cgroups (cgroupfs driver, cgroupRoot "/")
// in every hierarchy of this machine.
func cgroupRoots() []string {
	var roots []string
	for _, pattern := range []string{"/sys/fs/cgroup/*/kubepods*", "/sys/fs/cgroup/kubepods*"} {
		m, _ := filepath.Glob(pattern)
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				roots = append(roots, p)
			}
		}
	}
	return roots
}

// removeCgroups removes the kubelet's cgroups, deepest first (a cgroup
// directory goes with rmdir, once it holds no process and no child).
func removeCgroups() error {
	var errs []error
	for _, root := range cgroupRoots() {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeLeftovers removes what a node using dir may have left: after a
// clean stop it finds nothing; after a crash (of the program that owned the
// node, or of a component) it kills the processes, unmounts, deletes the
// interfaces, the iptables chains and the cgroups, and restores the sysctls.
//
// With keepAddress the bridge holding the node's address stays: a
// kube-apiserver serving there still runs (Stop), and Release removes it.
func removeLeftovers(ctx context.Context, dir string, keepAddress bool) error {
	errs := []error{killProcesses(dir)}
	errs = append(errs, unmountAll(dir, "/run/netns", "/var/run/netns"))
	errs = append(errs, removeNetns())
	errs = append(errs, deleteLinks(ctx, keepAddress), removeChains(ctx), removeCgroups())
	errs = append(errs, restoreSysctls(filepath.Join(dir, "sysctls.json")))
	return errors.Join(errs...)
}

// removeNetns removes the network namespace files containerd's CRI made
// (/run/netns/cni-*), once unmounted.
func removeNetns() error {
	var errs []error
	for _, d := range []string{"/run/netns", "/var/run/netns"} {
		m, _ := filepath.Glob(filepath.Join(d, "cni-*"))
		for _, f := range m {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Snapshot is what of a node can be seen on this machine: processes,
// mounts, interfaces, iptables chains, cgroups. Two snapshots, before a
// node starts and after it stops, must be equal.
type Snapshot struct {
	Processes []string
	Mounts    []string
	Links     []string
	Chains    []string
	Cgroups   []string
	Netns     []string
}

// TakeSnapshot looks at the machine. dir is the node's state directory.
func TakeSnapshot(dir string) Snapshot {
	var s Snapshot
	for _, comm := range nodeProcesses(dir) {
		s.Processes = append(s.Processes, comm)
	}
	// Processes of any node, not only dir's: a component started by
	// someone else's run would be left behind as much.
	for pid, comm := range namedProcesses("containerd", "containerd-shim", "containerd-shim-runc-v2", "kubelet", "kube-proxy") {
		s.Processes = append(s.Processes, fmt.Sprintf("%s(%d)", comm, pid))
	}
	s.Mounts = mountsUnder(dir, "/run/netns", "/var/run/netns", "/run/containerd", "/var/lib/kubelet")
	s.Links = ourLinks(context.Background())
	s.Chains = iptablesChains()
	s.Cgroups = cgroupRoots()
	s.Netns, _ = filepath.Glob("/run/netns/cni-*")
	for _, l := range [][]string{s.Processes, s.Mounts, s.Links, s.Chains, s.Cgroups, s.Netns} {
		sort.Strings(l)
	}
	return s
}

// namedProcesses are the processes whose command name is one of names.
func namedProcesses(names ...string) map[int]string {
	procs := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && slices.Contains(names, strings.TrimSpace(string(comm))) && !zombie(pid) {
			procs[pid] = strings.TrimSpace(string(comm))
		}
	}
	return procs
}

// zombie reports a process that has exited and waits for its parent
// (init, for a reparented shim) to reap it: nothing of it runs.
func zombie(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z'
}

// Diff says what after has that before had not, one line per thing; empty
// means nothing was left behind.
func Diff(before, after Snapshot) []string {
	var out []string
	add := func(kind string, b, a []string) {
		for _, x := range a {
			if !slices.Contains(b, x) {
				out = append(out, kind+" "+x)
			}
		}
	}
	add("process", before.Processes, after.Processes)
	add("mount", before.Mounts, after.Mounts)
	add("interface", before.Links, after.Links)
	add("iptables chain", before.Chains, after.Chains)
	add("cgroup", before.Cgroups, after.Cgroups)
	add("netns", before.Netns, after.Netns)
	return out
}
