"""What each cached component is made of and how it is built from its Go modules."""

from __future__ import annotations

from dataclasses import dataclass

K8S_VERSION_PKGS = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


@dataclass(frozen=True)
class GoRecipe:
    """How to build one component's binaries from Go modules through the module proxy."""

    modules: tuple[str, ...]
    packages: dict[str, str]
    ldflags: tuple[str, ...] = ()
    cgo: bool = False
    tags: tuple[str, ...] = ()
    local_replace: str = "same"  # version for path replaces: "same" or "k8s-staging"
    extra_requires: tuple[str, ...] = ()
    # (cached file, test package) compiled with `go test -c` (a test binary, e.g. e2e.test)
    test_binaries: tuple[tuple[str, str], ...] = ()
    # (cached file, directory of the first module) packed as a reproducible .tar.gz
    archives: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Component:
    """One cached unit: a named, versioned set of files (binaries or image tarballs)."""

    name: str
    version_key: str
    files: tuple[str, ...]
    go: GoRecipe | None = None
    image: str | None = None
    deployed: bool = True  # installed by `up`; False: an operator tool (kube-bench)
    # Debian packages (the first at the pinned version, then the dependencies a minimal Debian 12
    # lacks), fetched by kubesmith/binaries/debian.py; files are <package>.deb.
    debs: tuple[str, ...] = ()
    optional: bool = False  # built only when named or needed (`binaries` builds the others)


def _k8s_ldflags() -> tuple[str, ...]:
    flags = []
    for pkg in K8S_VERSION_PKGS:
        flags += [
            f"-X {pkg}.gitVersion={{version}}",
            f"-X {pkg}.gitMajor={{major}}",
            f"-X {pkg}.gitMinor={{minor}}",
            f"-X {pkg}.gitCommit={{commit}}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={{date}}",
        ]
    return tuple(flags)


K8S_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
# Tarballs of the conformance suite's test images (kubesmith/binaries/e2e_images.py builds them).
E2E_IMAGE_FILES = ("agnhost.tar", "busybox.tar", "jessie-dnsutils.tar", "kitten.tar",
                   "nautilus.tar", "httpd.tar", "nginx.tar", "nonewprivs.tar",
                   "sample-apiserver.tar", "etcd.tar")
CNI_PLUGINS = {
    "bridge": "main/bridge",
    "host-local": "ipam/host-local",
    "loopback": "main/loopback",
    "portmap": "meta/portmap",
}

# haproxy and what Debian 12's minbase lacks of its dependencies (lua, opentracing).
HAPROXY_DEBS = ("haproxy", "liblua5.3-0", "libopentracing-c-wrapper0", "libopentracing1")

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "kubernetes",
            "kubernetes_version",
            K8S_BINARIES,
            GoRecipe(
                modules=("k8s.io/kubernetes",),
                packages={b: f"k8s.io/kubernetes/cmd/{b}" for b in K8S_BINARIES},
                ldflags=_k8s_ldflags(),
                local_replace="k8s-staging",
            ),
        ),
        Component(
            "etcd",
            "etcd_version",
            ("etcd", "etcdctl", "etcdutl"),
            GoRecipe(
                modules=(
                    "go.etcd.io/etcd/server/v3",
                    "go.etcd.io/etcd/etcdctl/v3",
                    "go.etcd.io/etcd/etcdutl/v3",
                ),
                packages={
                    "etcd": "go.etcd.io/etcd/server/v3",
                    "etcdctl": "go.etcd.io/etcd/etcdctl/v3",
                    "etcdutl": "go.etcd.io/etcd/etcdutl/v3",
                },
                ldflags=("-X go.etcd.io/etcd/api/v3/version.GitSHA={short_commit}",),
            ),
        ),
        Component(
            "flannel",
            "flannel_version",
            ("flanneld",),
            GoRecipe(
                modules=("github.com/flannel-io/flannel",),
                packages={"flanneld": "github.com/flannel-io/flannel"},
                ldflags=("-X github.com/flannel-io/flannel/pkg/version.Version={version}",),
                cgo=True,
                # The proxy here lacks the tencentcloud SDK version pinned for the (unused)
                # tencentvpc backend; lift it to the nearest served release.
                extra_requires=(
                    "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common@v1.3.85",
                ),
            ),
        ),
        # The flannel CNI plugin: flannel-io/cni-plugin is not served by the module proxy here;
        # its upstream origin, containernetworking/plugins v0.9.x plugins/meta/flannel, is.
        Component(
            "flannel-cni",
            "flannel_cni_version",
            ("flannel",),
            GoRecipe(
                modules=("github.com/containernetworking/plugins",),
                packages={"flannel": "github.com/containernetworking/plugins/plugins/meta/flannel"},
                ldflags=(
                    "-X github.com/containernetworking/plugins/pkg/utils/buildversion"
                    ".BuildVersion={version}",
                ),
                extra_requires=("golang.org/x/sys@v0.30.0",),
            ),
        ),
        Component(
            "cni-plugins",
            "cni_plugins_version",
            tuple(CNI_PLUGINS),
            GoRecipe(
                modules=("github.com/containernetworking/plugins",),
                packages={
                    name: f"github.com/containernetworking/plugins/plugins/{path}"
                    for name, path in CNI_PLUGINS.items()
                },
                ldflags=(
                    "-X github.com/containernetworking/plugins/pkg/utils/buildversion"
                    ".BuildVersion={version}",
                ),
            ),
        ),
        Component(
            "containerd",
            "containerd_version",
            ("containerd", "containerd-shim-runc-v2", "ctr"),
            GoRecipe(
                modules=("github.com/containerd/containerd/v2",),
                packages={
                    b: f"github.com/containerd/containerd/v2/cmd/{b}"
                    for b in ("containerd", "containerd-shim-runc-v2", "ctr")
                },
                ldflags=(
                    "-X github.com/containerd/containerd/v2/version.Version={version}",
                    "-X github.com/containerd/containerd/v2/version.Revision={commit}",
                    "-X github.com/containerd/containerd/v2/version.Package="
                    "github.com/containerd/containerd/v2",
                ),
                tags=("no_btrfs",),
            ),
        ),
        Component(
            "runc",
            "runc_version",
            ("runc",),
            GoRecipe(
                modules=("github.com/opencontainers/runc",),
                packages={"runc": "github.com/opencontainers/runc"},
                ldflags=("-X main.version={bare_version}", "-X main.gitCommit={commit}"),
                cgo=True,
                tags=("seccomp",),
            ),
        ),
        Component(
            "crictl",
            "crictl_version",
            ("crictl",),
            GoRecipe(
                modules=("sigs.k8s.io/cri-tools",),
                packages={"crictl": "sigs.k8s.io/cri-tools/cmd/crictl"},
                ldflags=("-X sigs.k8s.io/cri-tools/pkg/version.Version={version}",),
            ),
        ),
        Component(
            "kube-bench",
            "kube_bench_version",
            ("kube-bench", "kube-bench-cfg.tar.gz"),
            GoRecipe(
                modules=("github.com/aquasecurity/kube-bench",),
                packages={"kube-bench": "github.com/aquasecurity/kube-bench"},
                ldflags=("-X github.com/aquasecurity/kube-bench/cmd.KubeBenchVersion={version}",),
                archives=(("kube-bench-cfg.tar.gz", "cfg"),),
            ),
            deployed=False,
        ),
        # The apiserver load balancer of every node (Debian 12's haproxy 2.6).
        Component("haproxy", "haproxy_version", tuple(f"{p}.deb" for p in HAPROXY_DEBS),
                  debs=HAPROXY_DEBS),
        # The conformance suite (deploy.py conformance): e2e.test, the ginkgo runner at the
        # version kubernetes' go.mod pins, agnhost, nonewprivs' nnp and sample-apiserver, from the
        # kubernetes wrapper module; and the test images it runs (kubesmith/binaries/e2e_images.py).
        Component(
            "e2e",
            "kubernetes_version",
            ("e2e.test", "ginkgo", "agnhost", "nnp", "sample-apiserver"),
            GoRecipe(
                modules=("k8s.io/kubernetes",),
                packages={"ginkgo": "github.com/onsi/ginkgo/v2/ginkgo",
                          "agnhost": "k8s.io/kubernetes/test/images/agnhost",
                          "nnp": "k8s.io/kubernetes/test/images/nonewprivs",
                          "sample-apiserver": "k8s.io/sample-apiserver"},
                ldflags=_k8s_ldflags(),
                local_replace="k8s-staging",
                test_binaries=(("e2e.test", "k8s.io/kubernetes/test/e2e"),),
            ),
            deployed=False,
            optional=True,
        ),
        Component(
            "e2e-images",
            "kubernetes_version",
            E2E_IMAGE_FILES,
            image="e2e",
            deployed=False,
            optional=True,
        ),
        Component("pause-image", "pause_version", ("pause.tar",), image="pause"),
        Component("busybox-image", "busybox_version", ("busybox.tar",), image="busybox"),
        # Cluster add-on images: one static Go binary each, packed like pause (images.py).
        Component(
            "coredns",
            "coredns_version",
            ("coredns.tar",),
            GoRecipe(
                modules=("github.com/coredns/coredns",),
                packages={"coredns": "github.com/coredns/coredns"},
                # What upstream's Makefile stamps; the version itself is a constant in coremain.
                ldflags=("-X github.com/coredns/coredns/coremain.GitCommit={short_commit}",),
            ),
            image="coredns",
        ),
        Component(
            "metrics-server",
            "metrics_server_version",
            ("metrics-server.tar",),
            GoRecipe(
                modules=("sigs.k8s.io/metrics-server",),
                packages={"metrics-server": "sigs.k8s.io/metrics-server/cmd/metrics-server"},
                # Upstream's Makefile stamps client-go's version package only (--version reads it).
                ldflags=(
                    "-X k8s.io/client-go/pkg/version.gitVersion={version}",
                    "-X k8s.io/client-go/pkg/version.gitCommit={commit}",
                    "-X k8s.io/client-go/pkg/version.buildDate={date}",
                ),
            ),
            image="metrics-server",
        ),
    )
}
