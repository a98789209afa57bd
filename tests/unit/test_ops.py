"""Parsing of the one-command facts tasks decide from, and template rendering."""

import shlex

import pytest
from jinja2 import UndefinedError

from tasks import _ops


def test_file_states_parse_files_dirs_and_missing() -> None:
    lines = ["/etc/kubernetes 755 dir", "/etc/kubernetes/pki/admin.key 600 " + "a" * 64,
             "/etc/missing - -"]
    states = _ops.FileStates().process(lines)
    assert states["/etc/kubernetes"] == ("755", "dir")
    assert states["/etc/kubernetes/pki/admin.key"] == ("600", "a" * 64)
    assert states["/etc/missing"] == ("-", "-")


def test_file_states_command_quotes_every_path() -> None:
    paths = ["/a b", "/c", "/x'$(reboot)'y", "/n\nl"]
    command = _ops.FileStates().command(paths)
    assert command.count(" ".join(shlex.quote(p) for p in paths)) == 2  # printf and stat
    assert "'/x'\"'\"'$(reboot)'\"'\"'y'" in command and "sha256sum" in command


def test_file_states_of_directories_files_and_missing_paths_run_by_sh(tmp_path) -> None:
    import hashlib
    import subprocess

    (tmp_path / "d i r").mkdir(mode=0o750)
    (tmp_path / "d i r").chmod(0o750)
    (tmp_path / "f|1").write_bytes(b"x")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    paths = [str(tmp_path / n) for n in ("d i r", "f|1", "empty", "dangling", "gone")]
    out = subprocess.run(["sh", "-c", _ops.FileStates().command(paths, str(tmp_path / "sums"))],
                         capture_output=True, text=True, check=True).stdout
    states = _ops.FileStates().process(out.splitlines())
    assert {p: states[p] for p in paths} == {
        paths[0]: ("750", "dir"), paths[1]: ("644", hashlib.sha256(b"x").hexdigest()),
        paths[2]: ("644", hashlib.sha256(b"").hexdigest()), paths[3]: ("-", "-"),
        paths[4]: ("-", "-")}


def test_file_states_trust_a_recorded_sum_only_while_the_file_is_unchanged(tmp_path) -> None:
    """The sum recorded at upload is used while inode, ctime and size hold (no read of the
    content); a write or a replacement, even of the same size, reads the content again."""
    import hashlib
    import os
    import subprocess

    binary, sums = tmp_path / "kubelet", str(tmp_path / "sums")
    binary.write_bytes(b"v1")
    recorded = "f" * 64  # not the content's sum: proves the record is what is read back

    def state() -> tuple[str, ...]:
        out = subprocess.run(["sh", "-c", _ops.FileStates().command([str(binary)], sums)],
                             capture_output=True, text=True, check=True).stdout
        return _ops.FileStates().process(out.splitlines())[str(binary)]

    subprocess.run(["sh", "-c", _ops.record_sum(str(binary), recorded, sums)], check=True)
    assert state() == ("644", recorded)
    binary.write_bytes(b"v2")  # same size, new content
    assert state() == ("644", hashlib.sha256(b"v2").hexdigest())
    other = tmp_path / "other"
    other.write_bytes(b"v3")
    os.replace(other, binary)
    assert state() == ("644", hashlib.sha256(b"v3").hexdigest())


def test_unit_states_from_one_systemctl_in_the_order_asked(tmp_path) -> None:
    """The command run by sh with a stand-in systemctl (blocks as `systemctl show` prints
    them); kube-proxy's main process runs an executable deleted since it started."""
    import os
    import shutil
    import subprocess

    sleeper = tmp_path / "sleeper"
    shutil.copy("/bin/sleep", sleeper)
    deleted = subprocess.Popen([str(sleeper), "30"])
    sleeper.unlink()
    blocks = [f"MainPID={os.getpid()}\nActiveState=active\nUnitFileState=enabled",
              "ActiveState=inactive\nUnitFileState=\nMainPID=0",
              f"ActiveState=active\nMainPID={deleted.pid}\nUnitFileState=enabled"]
    (tmp_path / "systemctl").write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n\n".join(blocks)
                                        + "\nEOF\n")
    (tmp_path / "systemctl").chmod(0o755)
    units = ["etcd.service", "kubelet.service", "kube-proxy.service"]
    try:
        out = subprocess.run(["sh", "-c", _ops.UnitStates().command(units)], capture_output=True,
                             text=True, check=True,
                             env=dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")).stdout
    finally:
        deleted.kill()
    assert _ops.UnitStates().process(out.splitlines()) == {
        "etcd.service": _ops.UnitState("active", "enabled"),
        "kubelet.service": _ops.UnitState("inactive", ""),
        "kube-proxy.service": _ops.UnitState("active", "enabled", True)}


def test_unit_states_command_quotes_every_unit() -> None:
    assert "'x'\"'\"'$(reboot)'\"'\"''" in _ops.UnitStates().command(["x'$(reboot)'"])


def test_template_item_hashes_rendered_text() -> None:
    item = _ops.template("sysctl", "common/sysctl.conf.j2", "/etc/sysctl.d/90-kubesmith.conf")
    assert "net.ipv4.ip_forward = 1" in (item.content or "")
    assert len(item.sha256) == 64 and item.mode == "644"


def test_templates_refuse_missing_values() -> None:
    with pytest.raises(UndefinedError):
        _ops.render("etcd/etcd.service.j2")


def test_etcdctl_command_with_and_without_endpoint_override() -> None:
    from pathlib import Path

    from kubesmith.context import DeployContext
    from kubesmith.model import Cluster
    from tasks import etcd

    ctx = DeployContext(Cluster(()), {"kube_config_dir": "/etc/kubernetes"}, Path("/x"))
    assert etcd.etcdctl(ctx, "member list") == (
        ". /etc/kubernetes/etcdctl.env && etcdctl --dial-timeout=10s --command-timeout=30s "
        "member list")
    assert etcd.etcdctl(ctx, "endpoint health", "https://a:2379") == (
        ". /etc/kubernetes/etcdctl.env && ETCDCTL_ENDPOINTS=https://a:2379 etcdctl "
        "--dial-timeout=10s --command-timeout=30s endpoint health")


def test_flannel_leases_from_etcdctl_listing() -> None:
    from tasks import flannel

    listing = ('/coreos.com/network/subnets/10.200.7.0-24\n{"PublicIP":"10.240.0.12","BackendType":'
               '"vxlan"}\n/coreos.com/network/subnets/10.200.9.0-24\n{"PublicIP":"10.240.0.13"}')
    assert flannel.leases(listing, "/coreos.com/network") == {
        "/coreos.com/network/subnets/10.200.7.0-24": "10.240.0.12",
        "/coreos.com/network/subnets/10.200.9.0-24": "10.240.0.13"}


def test_flannel_leases_keep_only_lease_keys_under_the_prefix() -> None:
    from tasks import flannel

    planted = ["/coreos.com/network/subnets/10.200.7.0-24", '{"PublicIP":"10.240.0.12"}',
               "/coreos.com/network/subnets/x;reboot", '{"PublicIP":"10.240.0.12"}',
               "/coreos.com/network/config", '{"PublicIP":"10.240.0.12"}',
               "/coreos.com/network/subnets/10.200.9.0-24", '{"PublicIP":"$(reboot)"}',
               "/other/subnets/10.200.8.0-24", '{"PublicIP":"10.240.0.12"}',
               "/coreos.com/network/subnets/10.200.300.0-24", '{"PublicIP":"10.240.0.12"}',
               "/coreos.com/network/subnets/10.200.10.0-24", "not json"]
    assert flannel.leases("\n".join(planted), "/coreos.com/network") == {
        "/coreos.com/network/subnets/10.200.7.0-24": "10.240.0.12"}


def test_etcd_members_with_a_planted_id_are_ignored() -> None:
    from tasks import etcd

    listing = ("8e9e05c52164694d, started, a, https://10.0.0.1:2380, https://10.0.0.1:2379, false\n"
               "$(reboot), started, b, https://10.0.0.2:2380, https://10.0.0.2:2379, false\n")
    assert [m.id for m in etcd.members(listing)] == ["8e9e05c52164694d"]


def test_etcd_member_list_parse() -> None:
    from tasks import etcd

    listing = ("8e9e05c52164694d, started, lab-1, https://10.0.0.1:2380, https://10.0.0.1:2379, "
               "false\n91bc3c398fb3c146, unstarted, , https://10.0.0.2:2380, , true\n")
    assert etcd.members(listing) == [
        etcd.Member("8e9e05c52164694d", True, "lab-1", "https://10.0.0.1:2380", False),
        etcd.Member("91bc3c398fb3c146", False, "", "https://10.0.0.2:2380", True)]
    assert etcd.members("Error: context deadline exceeded") == []


def test_etcd_bootstrap_membership_for_new_and_joining_members() -> None:
    text = _ops.render("etcd/etcd-bootstrap.env.j2", etcd_data_dir="/var/lib/etcd",
                       initial_cluster="a=https://10.0.0.1:2380,b=https://10.0.0.2:2380",
                       initial_cluster_state="existing")
    assert "ETCD_INITIAL_CLUSTER=a=https://10.0.0.1:2380,b=https://10.0.0.2:2380\n" in text
    assert "ETCD_INITIAL_CLUSTER_STATE=existing\n" in text


def test_create_only_items_are_left_alone_once_present(monkeypatch) -> None:
    from types import SimpleNamespace

    item = _ops.Item("boot", "/etc/x.env", content="new", sha256="b" * 64, create_only=True)
    put: list[str] = []
    monkeypatch.setattr(_ops, "write", lambda **kw: put.extend(i.dest for i in kw["files"]))
    have = {"/etc/x.env": ("644", "a" * 64), _ops.MANIFEST: ("file /etc/x.env",)}
    monkeypatch.setattr(_ops, "host", SimpleNamespace(get_fact=lambda *_a, **_k: have))
    assert _ops.sync([item]).ops == {item: None} and put == []
    have["/etc/x.env"] = ("-", "-")
    _ops.sync([item])
    assert put == ["/etc/x.env"]


def test_retired_paths_are_read_with_the_items_and_removed_only_where_present(
        monkeypatch) -> None:
    from types import SimpleNamespace

    item = _ops.Item("kubelet", "/usr/local/bin/kubelet", content="k", sha256="b" * 64)
    asked: list[list[str]] = []
    removed: list[str] = []
    have = {"/usr/local/bin/kubelet": ("644", "b" * 64), "/usr/local/bin/kubectl": ("755", "c"),
            _ops.MANIFEST: ("file /usr/local/bin/kubelet",)}

    def get_fact(_fact, paths):
        asked.append(paths)
        return have

    monkeypatch.setattr(_ops, "host", SimpleNamespace(get_fact=get_fact))
    monkeypatch.setattr(_ops.server, "shell", lambda **kw: removed.extend(kw["commands"]))
    _ops.sync([item], retired=["/usr/local/bin/kubectl", "/usr/local/bin/gone"])
    assert len(asked) == 1 and "/usr/local/bin/kubectl" in asked[0]
    assert removed == ["rm -f /usr/local/bin/kubectl"]
    del have["/usr/local/bin/kubectl"]
    removed.clear()
    _ops.sync([item], retired=["/usr/local/bin/kubectl"])
    assert removed == []


def test_kubectl_is_retired_from_nodes_but_kept_on_masters() -> None:
    from kubesmith import services

    assert services.retired(frozenset({"nodes"})) == ("kubectl",)
    assert services.retired(frozenset({"masters", "nodes"})) == ()
    assert "kubectl" not in services.SERVICES["kubelet"].files


def test_cluster_without_removed_hosts() -> None:
    from kubesmith.model import Cluster, Host

    a = Host("a", "10.0.0.1", frozenset({"etcd", "masters"}))
    b = Host("b", "10.0.0.2", frozenset({"etcd", "nodes"}))
    assert Cluster((a, b)).without({"b"}).etcd_initial_cluster == "a=https://10.0.0.1:2380"


def test_images_import_at_once_and_any_failure_fails(tmp_path) -> None:
    """The import command run with a stand-in `ctr` on PATH (only the shell logic is tested)."""
    import os
    import subprocess

    from tasks import runtime

    ctr = tmp_path / "ctr"
    ctr.write_text('#!/bin/sh\n[ "$5" = --local ] || exit 2\n'
                   'echo "$6" >> "$(dirname "$0")/imported"; case "$6" in *bad*) exit 1;; esac\n')
    ctr.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")

    def run(*tarballs: str) -> int:
        return subprocess.run(["sh", "-c", runtime.import_command(list(tarballs))], env=env,
                              check=False).returncode

    assert run("/i/pause.tar", "/i/coredns.tar") == 0
    assert run("/i/bad.tar", "/i/busybox.tar") == 1
    assert sorted((tmp_path / "imported").read_text().split()) == [
        "/i/bad.tar", "/i/busybox.tar", "/i/coredns.tar", "/i/pause.tar"]


def test_at_once_runs_every_command_and_fails_if_any_failed(tmp_path) -> None:
    import subprocess

    log = tmp_path / "ran"

    def run(*commands: str) -> int:
        return subprocess.run(["sh", "-c", f"{_ops.at_once(list(commands))} && echo after >> "
                               f"{log}"], check=False).returncode

    assert run(f"echo a >> {log}", f"sleep 0.2 && echo b >> {log}") == 0
    assert log.read_text().split() == ["a", "b", "after"]
    assert run("false", f"echo c >> {log}") == 1
    assert log.read_text().split()[-1] == "c"  # ran, and nothing after the failed round


def test_units_enabled_without_their_own_reloads_then_one_reload(tmp_path) -> None:
    """A stand-in systemctl on PATH records its calls: enable --no-reload, then one reload."""
    import os
    import subprocess

    systemctl = tmp_path / "systemctl"
    systemctl.write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/calls"\n')
    systemctl.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    for units in (["kubelet.service", "kube-proxy.service"], []):
        subprocess.run(["sh", "-c", _ops.reload_command(units)], env=env, check=True)
    assert (tmp_path / "calls").read_text().splitlines() == [
        "enable --no-reload -- kubelet.service kube-proxy.service", "daemon-reload",
        "daemon-reload"]
