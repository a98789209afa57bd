"""The wrapper go.mod that builds upstream modules through the module proxy."""

from kubesmith.binaries import gobuild
from kubesmith.binaries.recipes import COMPONENTS

K8S_UPSTREAM = {
    "Go": "1.24.0",
    "Godebug": [{"Key": "default", "Value": "go1.24"}],
    "Require": [{"Path": "k8s.io/api", "Version": "v0.0.0"},
                {"Path": "k8s.io/client-go", "Version": "v0.0.0"}],
    "Replace": [
        {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
        {"Old": {"Path": "k8s.io/client-go"}, "New": {"Path": "./staging/src/k8s.io/client-go"}},
    ],
}
ETCD_UPSTREAM = {
    "Go": "1.24",
    "Require": [{"Path": "go.etcd.io/etcd/api/v3", "Version": "v3.6.16"}],
    "Replace": [
        {"Old": {"Path": "go.etcd.io/etcd/api/v3"}, "New": {"Path": "../api"}},
        {"Old": {"Path": "go.etcd.io/etcd"}, "New": {"Path": "./FORBIDDEN_DEPENDENCY"}},
        {"Old": {"Path": "example.com/x", "Version": "v1.0.0"},
         "New": {"Path": "example.com/y", "Version": "v1.2.0"}},
    ],
    "Exclude": [{"Path": "example.com/bad", "Version": "v0.1.0"}],
}


def test_staging_version() -> None:
    assert gobuild.staging_version("v1.34.4") == "v0.34.4"


def test_kubernetes_wrapper_pins_every_staging_module() -> None:
    text = gobuild.wrapper_gomod("kubernetes", COMPONENTS["kubernetes"].go, "v1.34.4",
                                 [K8S_UPSTREAM])
    lines = text.splitlines()
    assert "go 1.24.0" in lines
    assert "godebug default=go1.24" in lines
    assert "require k8s.io/kubernetes v1.34.4" in lines
    assert "replace k8s.io/api => k8s.io/api v0.34.4" in lines
    assert "replace k8s.io/client-go => k8s.io/client-go v0.34.4" in lines


def test_etcd_wrapper_skips_guards_and_keeps_module_replaces() -> None:
    text = gobuild.wrapper_gomod("etcd", COMPONENTS["etcd"].go, "v3.6.16", [ETCD_UPSTREAM])
    assert "replace go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.16" in text
    assert "FORBIDDEN" not in text
    assert "go.etcd.io/etcd =>" not in text
    assert "replace example.com/x v1.0.0 => example.com/y v1.2.0" in text
    assert "exclude example.com/bad v0.1.0" in text


def test_stamp_values_for_kubernetes() -> None:
    values = gobuild.stamp_values("v1.34.4", {"Time": "2026-02-10T12:53:36Z"})
    assert (values["major"], values["minor"], values["bare_version"]) == ("1", "34", "1.34.4")
    flags = [f.format(**values) for f in COMPONENTS["kubernetes"].go.ldflags]
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=34" in flags
    assert "-X k8s.io/component-base/version.buildDate=2026-02-10T12:53:36Z" in flags


def test_cgo_only_where_needed() -> None:
    env = gobuild.go_env(COMPONENTS["runc"].go, "amd64")
    assert env["CGO_ENABLED"] == "1" and env["GOTOOLCHAIN"] == "local"
    assert gobuild.go_env(COMPONENTS["kubernetes"].go, "amd64")["CGO_ENABLED"] == "0"


def test_pack_is_reproducible_and_root_owned(tmp_path) -> None:
    import tarfile

    tree = tmp_path / "module" / "cfg" / "cis-1.10"
    tree.mkdir(parents=True)
    (tree / "node.yaml").write_text("controls: []\n")
    (tree / "node.yaml").chmod(0o444)
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    gobuild.pack(tmp_path / "module", "cfg", first)
    (tree / "node.yaml").touch()
    gobuild.pack(tmp_path / "module", "cfg", second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["cfg", "cfg/cis-1.10", "cfg/cis-1.10/node.yaml"]
    node = members["cfg/cis-1.10/node.yaml"]
    assert (node.uid, node.mode, node.mtime) == (0, 0o644, 0)


def test_kube_bench_is_an_operator_tool_with_its_cfg() -> None:
    component = COMPONENTS["kube-bench"]
    assert not component.deployed
    assert component.go.archives == (("kube-bench-cfg.tar.gz", "cfg"),)
    assert set(component.files) == {"kube-bench", "kube-bench-cfg.tar.gz"}


def test_addon_images_are_registered_with_pinned_versions() -> None:
    from kubesmith import settings

    versions = settings.versions()
    for name, key in (("coredns", "coredns_version"), ("metrics-server", "metrics_server_version")):
        component = COMPONENTS[name]
        assert component.version_key == key and key in versions
        assert (component.image, component.files) == (name, (f"{name}.tar",))
        assert component.deployed  # preloaded on the nodes like pause and busybox
        assert component.go is not None and not component.go.cgo  # static, CGO_ENABLED=0
        assert list(component.go.packages) == [name]  # the binary the image's entrypoint runs


def test_addon_stamps_follow_upstream_makefiles() -> None:
    values = gobuild.stamp_values("v1.14.7", {
        "Time": "2026-05-01T10:00:00Z",
        "Origin": {"Hash": "0123456789abcdef0123456789abcdef01234567"},
    })
    coredns = [f.format(**values) for f in COMPONENTS["coredns"].go.ldflags]
    assert coredns == ["-X github.com/coredns/coredns/coremain.GitCommit=0123456"]
    values = gobuild.stamp_values("v0.8.0", {"Time": "2025-06-01T00:00:00Z"})
    metrics = [f.format(**values) for f in COMPONENTS["metrics-server"].go.ldflags]
    assert "-X k8s.io/client-go/pkg/version.gitVersion=v0.8.0" in metrics
    assert "-X k8s.io/client-go/pkg/version.buildDate=2025-06-01T00:00:00Z" in metrics


def test_addon_wrappers_require_the_module_at_its_version() -> None:
    upstream = {"Go": "1.25.0", "Require": [{"Path": "k8s.io/client-go", "Version": "v0.35.4"}]}
    text = gobuild.wrapper_gomod("coredns", COMPONENTS["coredns"].go, "v1.14.7", [upstream])
    assert "require github.com/coredns/coredns v1.14.7" in text.splitlines()
    assert "go 1.25.0" in text.splitlines() and "replace" not in text
