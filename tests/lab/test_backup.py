"""etcd backup and restore on a 3-member lab: a backup with a member down, retention, the
members' backup timer, and (opt-in, marker restore_drill) the full restore drill."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from kubesmith import settings
from kubesmith.lab import hosts as lab
from tests.lab.conftest import WEB_POD

pytestmark = pytest.mark.lab

ETCDCTL = ". /etc/kubernetes/etcdctl.env && etcdctl "
MEMBERS = ("lab-1", "lab-2", "lab-3")


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    """lab-1 master, lab-2, lab-3 and lab-4 nodes; lab-1, lab-2 and lab-3 etcd members."""
    return cluster_factory(4, etcd=3)


def _backup(cluster, *args: str) -> Path:
    """Run `deploy.py backup ARGS`; the snapshot's path (its last output line names it)."""
    result = cluster.deploy("backup", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(result.stdout.strip().splitlines()[-1].split("; ")[-1])


def _all_members(cluster, members: tuple[str, ...] = MEMBERS) -> str:
    """etcdctl with the lab's etcdctl environment, against every member."""
    endpoints = ",".join(f"https://{cluster.lab.state.host(h).address}:2379" for h in members)
    return f". /etc/kubernetes/etcdctl.env && ETCDCTL_ENDPOINTS={endpoints} etcdctl "


def _etcd_status(cluster, members: tuple[str, ...] = MEMBERS) -> list[dict]:
    """`endpoint status` of every member, asked from lab-2."""
    out = cluster.ssh("lab-2", _all_members(cluster, members) + "endpoint status -w json")
    assert out.returncode == 0, out.stderr
    return [s["Status"]["header"] for s in json.loads(out.stdout)]


def _wait_healthy(cluster) -> None:
    deadline = time.monotonic() + 60
    while cluster.ssh("lab-2", _all_members(cluster) + "endpoint health").returncode != 0:
        assert time.monotonic() < deadline, "etcd members not all healthy within 60 s"
        time.sleep(1)


def test_backup_with_the_first_member_stopped(cluster, tmp_path) -> None:
    assert cluster.ssh("lab-1", "systemctl stop etcd").returncode == 0
    try:
        path = _backup(cluster, "--dest", str(tmp_path))
    finally:
        cluster.ssh("lab-1", "systemctl start etcd")
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["taken_from"] == "lab-2"  # lab-1 was skipped: unhealthy
    assert sorted(m["name"] for m in meta["members"]) == list(MEMBERS)
    assert meta["status"]["revision"] > 0 and meta["status"]["totalKey"] > 0
    assert meta["encryption_keys"] and all(k.startswith("secretbox:key1:")
                                           for k in meta["encryption_keys"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.with_name(path.name + ".sha256").read_text() == f"{digest}  {path.name}\n"
    for file in tmp_path.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    _wait_healthy(cluster)


def test_keep_3_after_5_backups_leaves_the_newest_3(cluster, tmp_path) -> None:
    taken = [_backup(cluster, "--dest", str(tmp_path), "--keep", "3") for _ in range(5)]
    assert sorted(tmp_path.glob("*.db")) == taken[2:]
    assert len(list(tmp_path.iterdir())) == 9  # each with its .sha256 and .json


def test_scheduled_backup_timer_on_every_member(cluster) -> None:
    result = cluster.deploy("backup", "--schedule", "--keep", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    for member in MEMBERS:
        timers = cluster.ssh(member, "systemctl list-timers --all --no-legend etcd-backup.timer")
        assert "etcd-backup.timer" in timers.stdout, (member, timers.stdout)
    for _ in range(3):
        run = cluster.ssh("lab-3", "systemctl start etcd-backup.service")
        assert run.returncode == 0, run.stderr
    listing = cluster.ssh("lab-3", "cd /var/lib/kubesmith/backups && stat -c '%a %n' * && "
                          "sha256sum -c --quiet *.sha256 && echo sums-ok").stdout
    files = dict(line.split()[::-1] for line in listing.splitlines() if line[:1].isdigit())
    assert len([f for f in files if f.endswith(".db")]) == 2, listing  # --keep 2 locally
    assert set(files.values()) == {"600"} and "sums-ok" in listing, listing
    again = cluster.deploy("backup", "--schedule", "--keep", "2")
    assert "0 operations changed" in again.stdout, again.stdout


def _pod_ip(cluster, node: str) -> str:
    return cluster.kubectl("get", "pod", f"web-{node}", "-o", "jsonpath={.status.podIP}")


@pytest.mark.restore_drill
def test_restore_drill(cluster, tmp_path) -> None:
    old_cluster_id = _etcd_status(cluster)[0]["cluster_id"]
    cluster.kubectl("create", "namespace", "before")
    path = _backup(cluster, "--dest", str(tmp_path))
    snapshot_revision = json.loads(path.with_name(path.name + ".json").read_text())[
        "status"]["revision"]
    cluster.kubectl("create", "namespace", "after")
    cluster.kubectl("delete", "namespace", "before", "--timeout=90s")

    start = time.monotonic()
    restored = cluster.deploy("restore", str(path), "--yes")
    took = time.monotonic() - start
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr
    print(f"restore took {took:.1f} s")

    namespaces = cluster.kubectl("get", "namespaces", "-o", "name").split()
    assert "namespace/before" in namespaces and "namespace/after" not in namespaces
    headers = _etcd_status(cluster)
    assert len({h["cluster_id"] for h in headers}) == 1, headers
    assert headers[0]["cluster_id"] != old_cluster_id
    assert min(h["revision"] for h in headers) > snapshot_revision
    auth = cluster.ssh("lab-1", ETCDCTL + "auth status").stdout
    assert "Authentication Status: true" in auth, auth
    cluster.kubectl("wait", "--for=condition=Ready", "node/lab-2", "node/lab-3", "node/lab-4",
                    "--timeout=180s")
    print(f"nodes Ready {time.monotonic() - start:.1f} s after the restore started")

    busybox = settings.versions()["busybox_version"]
    for node in ("lab-2", "lab-3"):
        cluster.apply(WEB_POD.format(node=node, busybox=busybox))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/web-lab-2", "pod/web-lab-3",
                    "--timeout=120s")
    for node in ("lab-2", "lab-3"):
        env = cluster.ssh(node, "cat /run/flannel/subnet.env").stdout
        subnet = re.search(r"FLANNEL_SUBNET=(\S+)", env).group(1)
        assert ipaddress.ip_address(_pod_ip(cluster, node)) in ipaddress.ip_network(
            subnet, strict=False), (node, subnet)
    target = _pod_ip(cluster, "lab-3")
    deadline = time.monotonic() + 60
    while True:
        answer = subprocess.run(
            [str(cluster.kubectl_binary()), f"--kubeconfig={cluster.state / 'admin.kubeconfig'}",
             "exec", "web-lab-2", "--", "sh", "-c",
             f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 {target} 8080'],
            capture_output=True, text=True, timeout=30, check=False).stdout
        if "hello-from-lab-3" in answer:
            print(f"pod to pod across nodes {time.monotonic() - start:.1f} s after the restore "
                  "started")
            break
        assert time.monotonic() < deadline, f"pod on lab-3 not reached from lab-2: {answer}"
        time.sleep(1)
    verify = cluster.deploy("verify")
    assert verify.returncode == 0, verify.stdout[-3000:]
    kept = cluster.ssh("lab-2", "ls -d /var/lib/etcd.before-restore-*").stdout.split()
    assert len(kept) == 1, kept


REPLACED = '''"""The lab with lab-3 lost: lab-4 (a node until now) replaces it as an etcd member."""
from kubesmith.lab.inventory import groups

_hosts = dict(entry for group in groups().values() for entry in group)
etcd = [(name, _hosts[name]) for name in ("lab-1", "lab-2", "lab-4")]
masters = [("lab-1", _hosts["lab-1"])]
nodes = [(name, _hosts[name]) for name in ("lab-2", "lab-4")]
'''


@pytest.mark.restore_drill
def test_restore_onto_a_replacement_member(cluster, tmp_path) -> None:
    path = _backup(cluster, "--dest", str(tmp_path))
    cluster.kubectl("create", "namespace", "after-replacement-backup")
    lab.stop("lab-3", kill=True, paths=cluster.lab.paths, log=lambda _msg: None)
    inventory = tmp_path / "replaced.py"
    inventory.write_text(REPLACED)

    start = time.monotonic()
    restored = cluster.deploy("restore", "-i", str(inventory), str(path), "--yes")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr
    print(f"restore onto a replacement member took {time.monotonic() - start:.1f} s")
    assert "differ from the snapshot's" in restored.stdout
    namespaces = cluster.kubectl("get", "namespaces", "-o", "name").split()
    assert "namespace/before" in namespaces
    assert "namespace/after-replacement-backup" not in namespaces
    members = cluster.ssh("lab-4", ETCDCTL + "member list -w simple").stdout
    assert sorted(line.split(", ")[2] for line in members.splitlines()) == [
        "lab-1", "lab-2", "lab-4"]
    headers = _etcd_status(cluster, ("lab-1", "lab-2", "lab-4"))
    assert len(headers) == 3 and len({h["cluster_id"] for h in headers}) == 1, headers
    data_dir = cluster.ssh("lab-4", "stat -c '%U %a' /var/lib/etcd").stdout.strip()
    assert data_dir == "etcd 700"
    cluster.kubectl("wait", "--for=condition=Ready", "node/lab-2", "node/lab-4",
                    "--timeout=180s")
    cluster.kubectl("delete", "node", "lab-3")
    verify = cluster.deploy("verify", "-i", str(inventory))
    assert verify.returncode == 0, verify.stdout[-3000:]
