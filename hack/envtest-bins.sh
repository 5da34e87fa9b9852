#!/usr/bin/env bash
# Builds the control-plane binaries that controller-runtime's envtest needs
# (etcd, kube-apiserver) and, optionally, kubectl, kwok and helm, from source
# taken from the Go module proxy. Prebuilt release downloads are not reachable
# here, so this replaces `setup-envtest use`.
#
# Usage: hack/envtest-bins.sh DEST   (the Makefile's `envtest` target calls it)
#   Then: export KUBEBUILDER_ASSETS=DEST
# Idempotent: a binary whose version stamp matches is not rebuilt.
# Knobs (env, from the Makefile): ETCD_VERSION, K8S_VERSION, KWOK_VERSION, HELM_VERSION,
#              WITH_KUBECTL=1, WITH_KWOK=1, WITH_HELM=1 (default 0),
#              WITH_CONTROLPLANE=1: also kube-controller-manager, kube-scheduler
#              and kwok, for `make run` (the Makefile's envtest-run target);
#              WITH_NODE=1: kube-controller-manager, kube-scheduler, kubelet and
#              kube-proxy, for a real node (internal/node; the Makefile's
#              envtest-node target). Cold, kubelet and kube-proxy add ~7 min
#              wall on 2 busy cores after the others (shared packages).
# Cost on 2 cores: ~5-10 min cold for etcd + kube-apiserver (peak ~2.4 GB RSS),
# seconds with warm Go caches. WITH_CONTROLPLANE adds ~11 min wall on 2 busy
# cores after kube-apiserver (3.5 min CPU: most packages are shared with it).
set -euo pipefail

DEST=${1:?usage: $0 DEST}
# The versions are the Makefile's (the one place they are said).
ETCD_VERSION=${ETCD_VERSION:?set by the Makefile}
K8S_VERSION=${K8S_VERSION:?set by the Makefile}
STAGING_VERSION=v0.${K8S_VERSION#v1.}          # v1.37.2 -> v0.37.2
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS="${GOFLAGS:-} -modcacherw"
export CGO_ENABLED=0

mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

have() { [[ -x "$DEST/$1" && "$(cat "$DEST/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"$DEST/.$1.version"; echo "built $1 $2"; }
# module NAME: a new wrapper module local.test/NAME in $WORK/NAME, entered.
module() { mkdir -p "$WORK/$1"; cd "$WORK/$1"; go mod init "local.test/$1" >/dev/null 2>&1; }
# k8s_ldflags: the version a k8s.io binary reports (upstream's build sets
# these from git; a module build has none of it).
k8s_ldflags() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$ld"
}

build_etcd() {
  have etcd "$ETCD_VERSION" && return
  module etcd
  cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
  go mod tidy >/dev/null
  go build -trimpath -o "$DEST/etcd" .
  stamp etcd "$ETCD_VERSION"
}

# kube-apiserver, kube-controller-manager and kube-scheduler live in
# k8s.io/kubernetes, whose go.mod points the k8s.io/* staging modules at
# ./staging; a wrapper module pins each to its release. One wrapper module
# serves all three, so they share one module graph and Go's build cache.
K8S_MOD=""
k8s_module() {
  [[ -n "$K8S_MOD" ]] && return
  K8S_MOD=$WORK/k8s; module k8s
  go mod download "k8s.io/kubernetes@$K8S_VERSION"
  local kmod
  kmod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
  local m
  for m in $(grep -oE '^\s*k8s\.io/[A-Za-z0-9._-]+ => \./staging' "$kmod" | awk '{print $1}'); do
    go mod edit -replace "$m=$m@$STAGING_VERSION"
  done
  go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
}

# build_k8s NAME CONSTRUCTOR: cmd/NAME's main as upstream writes it (time/tzdata
# is kube-controller-manager's, for CronJob time zones; harmless in the others).
# CONSTRUCTOR is the call, e.g. NewSchedulerCommand() or, for the kubelet,
# NewKubeletCommand(context.Background()).
build_k8s() {
  local name=$1 ctor=$2
  have "$name" "$K8S_VERSION" && return
  k8s_module
  mkdir -p "$K8S_MOD/$name"; cd "$K8S_MOD"
  cat >"$name/main.go" <<GO
package main

import (
	"context"
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/$name/app"
)

var _ = context.Background

func main() { os.Exit(cli.Run(app.$ctor)) }
GO
  go mod tidy >/dev/null
  go build -trimpath -ldflags "$(k8s_ldflags)" -o "$DEST/$name" "./$name"
  stamp "$name" "$K8S_VERSION"
}

build_kubectl() {
  have kubectl "$K8S_VERSION" && return
  module kubectl
  cat >main.go <<'GO'
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
GO
  go get "k8s.io/kubectl@$STAGING_VERSION" >/dev/null
  go mod tidy >/dev/null
  go build -trimpath -ldflags "$(k8s_ldflags)" -o "$DEST/kubectl" .
  stamp kubectl "$K8S_VERSION"
}

build_kwok() {
  : "${KWOK_VERSION:?set by the Makefile}"
  have kwok "$KWOK_VERSION" && return
  GOBIN=$DEST go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  stamp kwok "$KWOK_VERSION"
}

build_helm() {
  : "${HELM_VERSION:?set by the Makefile}"
  have helm "$HELM_VERSION" && return
  GOBIN=$DEST go install -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  stamp helm "$HELM_VERSION"
}

build_etcd
build_k8s kube-apiserver 'NewAPIServerCommand()'
[[ "${WITH_KUBECTL:-0}" == 1 ]] && build_kubectl
if [[ "${WITH_CONTROLPLANE:-0}" == 1 ]]; then
  build_k8s kube-controller-manager 'NewControllerManagerCommand()'
  build_k8s kube-scheduler 'NewSchedulerCommand()'
  WITH_KWOK=1
fi
if [[ "${WITH_NODE:-0}" == 1 ]]; then
  # A real node's cluster: kube-controller-manager and kube-scheduler too
  # (no kwok: nothing is simulated).
  build_k8s kube-controller-manager 'NewControllerManagerCommand()'
  build_k8s kube-scheduler 'NewSchedulerCommand()'
  build_k8s kubelet 'NewKubeletCommand(context.Background())'
  build_k8s kube-proxy 'NewProxyCommand()'
fi
[[ "${WITH_KWOK:-0}" == 1 ]] && build_kwok
[[ "${WITH_HELM:-0}" == 1 ]] && build_helm
echo "envtest binaries in $DEST:"; ls -1 "$DEST"
