"""Safe destruction without hosts: the manifest (recorded before installing, checked when read
back), the reset script rendered only from it, the refusals of reset, the prompts, preflight's
foreign runtimes, and the state directory keyed by cluster_name and owned by one inventory."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from kubesmith import cli, context, manifest
from kubesmith.context import DeployContext, StateError
from kubesmith.inventory import to_cluster
from kubesmith.runner import DeployError
from kubesmith.settings import group_data
from kubesmith.validate import check
from kubesmith.workflows import reset as reset_workflow
from tasks import _ops, preflight
from tasks import reset as reset_task

GROUPS = {
    "etcd": [("m1", {"address": "10.0.0.1"})],
    "masters": [("m1", {"address": "10.0.0.1"})],
    "nodes": [("n1", {"address": "10.0.0.2"})],
    "others": [("x1", {"address": "10.0.0.9"})],
}


def _ctx(state: Path) -> DeployContext:
    return DeployContext(to_cluster(GROUPS, group_data()), group_data(), state, GROUPS,
                         inventory="/inv/hosts.py", name="hosts")


# --- the manifest -----------------------------------------------------------------------------

def test_manifest_lines_are_parsed_and_deduplicated() -> None:
    text = "file /usr/local/bin/kubelet\n\ndir /var/lib/kubelet\nfile /usr/local/bin/kubelet\n" \
           "link cni0\nchain KUBE-\nuser etcd\npackage haproxy\nslice kubepods.slice\n" \
           "kept /var/lib/containerd\ndir /run/flannel\nfile /etc/systemd/system/kubelet.service\n"
    entries = manifest.parse("n1", text)
    assert entries[:2] == [("file", "/usr/local/bin/kubelet"), ("dir", "/var/lib/kubelet")]
    assert len(entries) == 10 and manifest.units(entries) == ["kubelet.service"]


@pytest.mark.parametrize("line", [
    "dir /", "dir /etc", "dir /var/lib", "dir /usr/bin/x", "file /etc", "dir relative/x",
    "dir /a/../etc", "file /a b", "dir /x;reboot", "link bad name", "chain KUBE", "user root;x",
    "package Hap", "slice x", "exec /bin/sh", "dir $(reboot)",
])
def test_a_manifest_line_kubesmith_would_not_write_refuses_the_reset(line: str) -> None:
    with pytest.raises(manifest.ManifestError, match=r"^n1: /var/lib/kubesmith/manifest line 2"):
        manifest.parse("n1", f"file /usr/local/bin/kubelet\n{line}\n")


def test_the_append_command_quotes_every_line() -> None:
    command = manifest.append_command(["file /a", "dir /b'$(x)'"])
    words = shlex.split(command)
    assert words[words.index("printf") + 2:words.index(">>")] == ["file /a", "dir /b'$(x)'"]


def _sync(monkeypatch, have: dict, items: list[_ops.Item]) -> list[tuple[str, object]]:
    """Run sync against fake facts; the ops it made, in order."""
    made: list[tuple[str, object]] = []
    monkeypatch.setattr(_ops, "host", SimpleNamespace(get_fact=lambda *_a, **_k: have))
    monkeypatch.setattr(_ops.server, "shell", lambda **kw: made.append(("shell", kw)))
    monkeypatch.setattr(_ops, "write", lambda **kw: made.append(
        ("write", [i.dest for i in kw["files"]])))
    _ops.sync(items)
    return made


def test_sync_records_items_and_the_directories_it_makes_before_writing(monkeypatch) -> None:
    items = [_ops.directory("/opt/cni/bin"),
             _ops.Item("plugin", "/opt/cni/bin/bridge", content="x", sha256="b" * 64)]
    made = _sync(monkeypatch, {"/opt/cni": ("-", "-")}, items)
    assert [kind for kind, _ in made] == ["shell", "write"]
    assert made[1][1] == ["/opt/cni/bin", "/opt/cni/bin/bridge"]
    command = made[0][1]["commands"][0]
    assert "'dir /opt/cni' 'dir /opt/cni/bin' 'file /opt/cni/bin/bridge'" in command
    assert "dir /opt'" not in command  # /opt is the system's: never recorded


def test_sync_records_nothing_twice(monkeypatch) -> None:
    item = _ops.Item("unit", "/etc/x.conf", content="x", sha256="b" * 64)
    made = _sync(monkeypatch, {"/etc/x.conf": ("644", "b" * 64),
                               _ops.MANIFEST: ("file /etc/x.conf",)}, [item])
    assert made == []


def test_service_directories_already_full_are_kept_unless_the_service_runs(monkeypatch) -> None:
    made: list[str] = []
    answer = "/var/lib/containerd full\n/run/containerd absent\n/var/lib/cni empty\n" \
             "/run/netns absent\ncni0 full"
    monkeypatch.setattr(_ops, "host", SimpleNamespace(get_fact=lambda *_a, **_k: answer))
    monkeypatch.setattr(_ops.server, "shell",
                        lambda **kw: made.append(kw["commands"][0]))
    _ops._record_makes({}, set(), ["containerd"], running=set())
    assert "'kept /var/lib/containerd' 'dir /run/containerd' 'dir /var/lib/cni' " \
           "'dir /run/netns' 'kept cni0' 'chain CNI-'" in made[0]
    made.clear()
    _ops._record_makes({}, set(), ["containerd"], running={"containerd"})  # an earlier kubesmith's
    assert "'dir /var/lib/containerd'" in made[0] and "'link cni0'" in made[0]


# --- the reset script -------------------------------------------------------------------------

def _script(text: str) -> str:
    return _ops.render("reset/reset.sh.j2", **reset_task.values(manifest.parse("n1", text)))


def test_reset_removes_only_what_the_manifest_lists() -> None:
    script = _script("dir /var/lib/kubesmith\nfile /usr/local/bin/containerd-shim-runc-v2\n"
                     "file /etc/systemd/system/containerd.service\nkept /var/lib/containerd\n"
                     "link cni0\nchain CNI-\n")
    assert "rm -rf -- /var/lib/kubesmith" in script
    assert "/var/lib/containerd" not in script and "/var/lib/kubelet" not in script
    assert "systemctl disable --now containerd.service" in script
    assert "/usr/local/bin/containerd-shim-runc-v2|" in script and ") kill -9" in script
    assert "pkill" not in script and "grep '^veth'" not in script
    assert "ip -o link show master cni0 type veth" in script
    assert "--noflush" in script and "-v own=CNI- -v links=cni0" in script
    assert "iptables-restore" not in script.replace('"$cmd-restore"', "")


def test_reset_of_a_host_without_manifest_removes_nothing() -> None:
    script = _script("")
    assert "nothing recorded here" in script and "rm " not in script


# --- reset's refusals -------------------------------------------------------------------------

def _pki(state: Path) -> str:
    (state / "pki").mkdir(parents=True)
    (state / "pki" / "kubernetes-ca.crt").write_text("our CA\n")
    return hashlib.sha256(b"our CA\n").hexdigest()


def test_reset_refuses_a_host_with_another_ca_unless_forced(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    ours = _pki(tmp_path)
    other = "kubernetes-ca " + "f" * 64 + "\nmanifest"
    [issue] = reset_workflow.problems(ctx, "n1", other, force=False)
    assert issue.startswith("n1: its /etc/kubernetes/pki/kubernetes-ca.crt is not the CA in ")
    assert "--force" in issue
    assert reset_workflow.problems(ctx, "n1", other, force=True) == []
    assert reset_workflow.problems(ctx, "n1", f"kubernetes-ca {ours}\nmanifest", False) == []
    # A bare host: nothing to check, nothing to remove.
    assert reset_workflow.problems(ctx, "n1", "", force=False) == []


def test_reset_refuses_our_host_without_a_manifest(tmp_path: Path) -> None:
    ours = _pki(tmp_path)
    [issue] = reset_workflow.problems(_ctx(tmp_path), "n1", f"kubernetes-ca {ours}", False)
    assert "no manifest" in issue and "run `up` once" in issue


def test_reset_targets_only_hosts_of_role_groups(tmp_path: Path) -> None:
    cluster = _ctx(tmp_path).cluster
    assert [h.name for h in reset_workflow.targets(cluster, None)] == ["m1", "n1"]
    with pytest.raises(DeployError, match="x1 is in none of the inventory's role groups"):
        reset_workflow.targets(cluster, ["x1"])


def test_the_probe_quotes_the_pki_dir(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    ctx.data = dict(ctx.data, pki_dir="/etc/k'x")
    assert shlex.quote("/etc/k'x/kubernetes-ca.crt") in reset_workflow.probe(ctx)


# --- prompts ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "asked"), [
    (["reset"], "reset m1, n1 of inventory /inv/hosts.py (state "),
    (["reset", "n1"], "reset n1 of inventory /inv/hosts.py"),
    (["remove-node", "n1"], "remove-node n1 of inventory /inv/hosts.py"),
])
def test_destroying_commands_ask_naming_inventory_and_hosts(monkeypatch, tmp_path: Path,
                                                            argv: list[str], asked: str) -> None:
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda text: prompts.append(text) or "n")
    assert not cli._confirm(cli.parser().parse_args(argv), _ctx(tmp_path))
    assert prompts[0].startswith(asked) and prompts[0].endswith("? [y/N] ")
    monkeypatch.setattr("builtins.input", lambda _text: "y")
    assert cli._confirm(cli.parser().parse_args(argv), _ctx(tmp_path))


def test_yes_skips_the_question(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr("builtins.input", lambda _text: pytest.fail("asked"))
    for argv in (["reset", "--yes"], ["remove-node", "n1", "--yes"], ["up"]):
        assert cli._confirm(cli.parser().parse_args(argv), _ctx(tmp_path))


# --- preflight: a runtime kubesmith did not install -------------------------------------------

GOOD = {"arch": ["x86_64"], "os": ["debian-12"], "swap": ["0"], "free_kib": ["9999999"],
        "bridge_nf": ["yes"], "forward_ok": ["yes"], "vxlan": ["yes"], "hostname": ["n1"],
        "limit": [f"{name} {minimum}" for name, minimum in preflight.NODE_LIMITS.items()]}


def test_preflight_refuses_a_runtime_or_kubelet_kubesmith_did_not_install(tmp_path) -> None:
    ctx = _ctx(tmp_path)
    found = dict(GOOD, running=["containerd /usr/bin/containerd", "dockerd /usr/bin/dockerd"],
                 present=["containerd /usr/bin/containerd", "kubelet /usr/local/bin/kubelet"])
    issues = preflight.problems(ctx, ctx.cluster.host("n1"), found)
    assert len(issues) == 3
    assert issues[0].startswith("runs containerd (/usr/bin/containerd) that kubesmith did not "
                                "install (not in /var/lib/kubesmith/manifest)")
    assert any("dockerd" in i for i in issues) and any("has kubelet" in i for i in issues)


def test_preflight_accepts_kubesmiths_own_runtime(tmp_path) -> None:
    ctx = _ctx(tmp_path)
    found = dict(GOOD, running=["containerd /usr/local/bin/containerd"],
                 present=["containerd /usr/local/bin/containerd"],
                 manifest=["file /usr/local/bin/containerd"])
    assert preflight.problems(ctx, ctx.cluster.host("n1"), found) == []
    # A host of an earlier kubesmith (no manifest): its own binary beside this cluster's CA.
    ours = _pki(tmp_path)
    old = dict(GOOD, running=["kubelet /usr/local/bin/kubelet"], ca=[ours])
    assert preflight.problems(ctx, ctx.cluster.host("n1"), old) == []
    assert preflight.problems(ctx, ctx.cluster.host("n1"), dict(old, ca=["0" * 64]))


# --- the state directory: cluster_name, one owner ---------------------------------------------

@pytest.fixture
def state_root(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("KUBESMITH_STATE", raising=False)
    monkeypatch.setenv("KUBESMITH_STATE_ROOT", str(tmp_path))
    return tmp_path


def _load(path: Path, cluster_name: str = "") -> DeployContext:
    data = dict(group_data(), cluster_name=cluster_name)
    return context.build(GROUPS, data, path.stem, lambda _w: None, str(path))


def test_cluster_name_keys_the_state_directory(state_root: Path) -> None:
    assert _load(Path("/a/prod.py")).state == state_root / "prod"
    assert _load(Path("/a/hosts.py"), "staging").state == state_root / "staging"


def test_a_state_directory_belongs_to_the_first_inventory(state_root: Path) -> None:
    first = _load(Path("/prod/hosts.py"), "shop")
    context.claim(first)
    assert json.loads((state_root / "shop" / context.OWNER).read_text()) == {
        "inventory": "/prod/hosts.py", "cluster_name": "shop"}
    assert _load(Path("/prod/hosts.py"), "shop").state == first.state  # its owner: fine
    with pytest.raises(StateError, match=r"state directory .*/shop belongs to inventory "
                                         r"/prod/hosts.py, not /staging/hosts.py"):
        _load(Path("/staging/hosts.py"), "shop")


def test_an_unowned_state_directory_is_adopted(state_root: Path) -> None:
    (state_root / "lab" / "pki").mkdir(parents=True)  # made by an earlier kubesmith
    ctx = _load(Path("/k/inventories/lab.py"))
    assert ctx.state == state_root / "lab"
    context.claim(ctx)
    assert context.owner(ctx.state) == "/k/inventories/lab.py"


def test_a_new_cluster_name_never_starts_a_new_ca_silently(state_root: Path) -> None:
    (state_root / "hosts" / "pki").mkdir(parents=True)  # this inventory's state, by stem
    with pytest.raises(StateError, match=r"cluster_name 'prod': .*/prod does not exist but "
                                         r".*/hosts holds this inventory's state"):
        _load(Path("/prod/hosts.py"), "prod")


def test_a_state_directory_named_outright_is_not_checked(state_root: Path, monkeypatch) -> None:
    context.claim(_load(Path("/prod/hosts.py"), "shop"))
    monkeypatch.setenv("KUBESMITH_STATE", str(state_root / "shop"))
    assert _load(Path("/lab/variant.py")).state == state_root / "shop"


@pytest.mark.parametrize("name", ["Prod", "a b", "-x", "x" * 64, "a.b", "../x", 3])
def test_a_bad_cluster_name_is_refused(name: object) -> None:
    problems = check({k: v for k, v in GROUPS.items() if k != "others"},
                     dict(group_data(), cluster_name=name))
    assert any(p.subject == "cluster_name" for p in problems), problems
