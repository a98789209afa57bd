"""Secrets encryption key rotation on real lab hosts: two masters (lab-1, lab-2; lab-1 the etcd
member), lab-3 a node whose balancer a reader reads through. Every Secret stays readable and ends
up stored under the new key in etcd; an interrupted rotation resumes where it stopped."""

from __future__ import annotations

import base64
import signal
import stat
import subprocess
import sys

import pytest

from kubesmith import encryption
from tests.lab.conftest import PROJECT, deploy_while_reading, longest_failure

pytestmark = pytest.mark.lab

NODE = "lab-3"
ETCDCTL = ". /etc/kubernetes/etcdctl.env && etcdctl "
GAP_LIMIT = 10.0  # seconds of failed reads in a row through the node's balancer
SECRETS = {("default", "alpha"): "first-value", ("team", "beta"): "second-value"}
# Every Secret in etcd: "<key> <first 26 bytes of its value, printable>", read as etcd's root;
# exits non-zero when the listing fails (not an empty list).
STORED = ("keys=$(" + ETCDCTL + "get --prefix --keys-only /registry/secrets/) || exit 1; "
          'printf "%s\\n" "$keys" | while read -r k; do '
          '[ -n "$k" ] || continue; printf "%s " "$k"; ' + ETCDCTL +
          'get --print-value-only "$k" | head -c 26 | tr -c "[:print:]" "?"; echo; done')


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    made = cluster_factory(3, etcd=1, masters=2)
    made.kubectl("create", "namespace", "team")
    for (namespace, name), value in SECRETS.items():
        made.kubectl("create", "secret", "generic", name, "-n", namespace,
                     f"--from-literal=word={value}")
    return made


def stored(cluster) -> dict[str, str]:
    """Every Secret's etcd key -> the start of its stored value."""
    listed = cluster.ssh_ok("lab-1", STORED)
    return dict(line.split(" ", 1) for line in listed.splitlines() if " " in line)


def readable(cluster) -> dict[tuple[str, str], str]:
    """The test Secrets' values as the operator reads them through the apiserver."""
    return {(ns, name): base64.b64decode(cluster.kubectl(
        "get", "secret", name, "-n", ns, "-o", "jsonpath={.data.word}")).decode()
        for ns, name in SECRETS}


def config_keys(cluster, master: str) -> list[str]:
    """The key names of a master's encryption config, in order."""
    out = cluster.ssh(master, "grep -o 'name: key[0-9]*' /etc/kubernetes/encryption-config.yaml")
    return [line.split()[-1] for line in out.stdout.splitlines()]


def test_bootstrap_writes_secrets_with_secretbox(cluster) -> None:
    values = stored(cluster)
    assert len(values) >= len(SECRETS), values
    assert all(v.startswith("k8s:enc:secretbox:v1:key1:") for v in values.values()), values
    ring = cluster.state / "pki" / encryption.RING
    assert stat.S_IMODE(ring.stat().st_mode) == 0o600


def test_rotation_keeps_every_secret_readable_and_stores_it_under_the_new_key(cluster) -> None:
    result, lines, elapsed = deploy_while_reading(cluster, NODE, "rotate-encryption-key")
    assert "new key key2 (secretbox) replaces key1" in result.stdout
    gap = longest_failure(lines)
    failed = [line for line in lines if line.endswith("fail")]
    print(result.stdout[-2500:])
    print(f"rotation: {elapsed:.0f} s; {len(lines)} reads through {NODE}'s balancer, "
          f"{len(failed)} failed, longest failure {gap:.1f} s")
    assert len(lines) > 20 and gap <= GAP_LIMIT, f"reads failed for {gap:.1f} s: {failed}"

    assert readable(cluster) == SECRETS
    values = stored(cluster)
    assert len(values) >= len(SECRETS)
    assert {k for k, v in values.items() if not v.startswith("k8s:enc:secretbox:v1:key2:")} \
        == set(), values
    assert config_keys(cluster, "lab-1") == config_keys(cluster, "lab-2") == ["key2"]
    ids = encryption.key_ids(cluster.state / "pki")
    assert [(k.name, k.in_use) for k in ids] == [("key1", False), ("key2", True)]


def test_an_interrupted_rotation_resumes(cluster) -> None:
    # Unbuffered: the test sees each line as it is printed, not at exit (the rotation would
    # have finished before the Ctrl-C).
    env = dict(cluster.env, PYTHONUNBUFFERED="1")
    command = [sys.executable, str(PROJECT / "deploy.py"), "rotate-encryption-key"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env, cwd=PROJECT)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if line.startswith("[encryption] primary:"):
            first.send_signal(signal.SIGINT)  # as an operator's Ctrl-C
            break
    first.communicate(timeout=120)
    ring = encryption.load(cluster.state / "pki")
    assert ring.rotation is not None and ring.rotation.new == "key3", "".join(seen)
    assert ring.rotation.phase == "primary"

    resumed = cluster.deploy("rotate-encryption-key")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming the rotation to key3 at phase primary" in resumed.stdout
    assert readable(cluster) == SECRETS
    values = stored(cluster)
    assert len(values) >= len(SECRETS), values
    assert all(v.startswith("k8s:enc:secretbox:v1:key3:") for v in values.values()), values
    assert config_keys(cluster, "lab-1") == config_keys(cluster, "lab-2") == ["key3"]


def test_rerun_of_up_changes_nothing(cluster) -> None:
    result = cluster.deploy("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 operations changed" in result.stdout, result.stdout
    assert "[encryption]" not in result.stdout
