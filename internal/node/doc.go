// Package node runs one real Kubernetes node on this machine beside a
// control plane started elsewhere (envtest's etcd and kube-apiserver):
// containerd with runc, the kubelet, kube-proxy in iptables mode, a bridge
// CNI network, and a local image registry that containerd uses as the
// mirror of every registry host, as in an air-gapped cluster. `make run`
// (cmd/taskgate-local) and the end-to-end suite (test/e2e) both start it
// here, so there is one recipe.
//
// The order is Prepare (host checks, leftovers of a crashed run removed,
// the node's own bridge and address), then the caller starts kube-apiserver
// configured by ConfigureAPIServer, then Start (kube-controller-manager,
// kube-scheduler, containerd, the kubelet, kube-proxy, the images, and a
// probe Pod that must print what it was told), and Stop, which deletes the
// workloads first and then removes everything the node made: processes,
// mounts, interfaces, iptables chains, cgroups, and the sysctls the kubelet
// and kube-proxy changed. Snapshot and Diff let a caller prove that nothing
// was left behind.
//
// Everything needs root, Linux, and the Debian packages containerd, runc,
// containernetworking-plugins, iptables and conntrack (.ci/run installs
// them); Check says what is missing.
package node
