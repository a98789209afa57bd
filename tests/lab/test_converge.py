"""A cluster bootstrapped by the last release (a worktree of its tag) converges with this code's
`up`, serving throughout: 3 etcd members (lab-1..3), 2 masters (lab-1, lab-2), lab-3 a node whose
balancer a reader reads through. etcd auth goes on live, certificates are re-issued and Secrets
move from aescbc to secretbox; nothing created before is lost. Opt-in (9 min, 17 min on a loaded
machine): pytest -m converge tests/lab/test_converge.py"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubesmith import encryption
from kubesmith.services import APISERVER_PORT
from tests.lab.conftest import (
    PROJECT,
    Deployed,
    assert_no_key_material,
    deploy_while_reading,
    longest_failure,
)

pytestmark = [pytest.mark.lab, pytest.mark.converge]

RELEASE = "v0.1.0"
NODE = "lab-3"
ETCDCTL = ". /etc/kubernetes/etcdctl.env && etcdctl "
PKI = "/etc/kubernetes/pki"
# With a credential masters hold in the release and now (any authenticated user may ask).
READYZ = (f"curl -sf --max-time 2 --cacert {PKI}/kubernetes-ca.crt "
          f"--cert {PKI}/apiserver-kubelet-client.crt --key {PKI}/apiserver-kubelet-client.key "
          f"https://127.0.0.1:{APISERVER_PORT}/readyz")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    """A git worktree of the release tag."""
    tree = tmp_path_factory.mktemp("release") / RELEASE
    subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(tree), RELEASE],
                   check=True, capture_output=True)
    yield tree
    subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(tree)],
                   check=False, capture_output=True)


@pytest.fixture(scope="module")
def cluster(lab_factory, release: Path, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """Three lab hosts bootstrapped by the release's `up`, with a Secret and a ConfigMap."""
    lab_ = lab_factory(3)
    state = Path(tmp_path_factory.mktemp("state"))
    env = dict(os.environ, KUBESMITH_LAB_DIR=str(lab_.paths.root), KUBESMITH_STATE=str(state),
               KUBESMITH_LAB_ETCD="3", KUBESMITH_LAB_MASTERS="2")
    old = subprocess.run([sys.executable, "deploy.py", "up"], cwd=release,
                         env={**env, "PYTHONPATH": str(release)}, capture_output=True, text=True,
                         timeout=1800, check=False)
    assert old.returncode == 0, f"{RELEASE} bootstrap failed:\n{old.stdout}\n{old.stderr}"
    assert (state / "pki" / encryption.LEGACY_KEY).exists(), "not a release with aescbc"
    deployed = Deployed(lab_, state, env, old.stdout + old.stderr)
    assert_no_key_material(deployed.first_up, state)
    deployed.kubectl("create", "secret", "generic", "before", "--from-literal=word=kept-secret")
    deployed.kubectl("create", "configmap", "before", "--from-literal=word=kept-config")
    return deployed


def _stored(cluster: Deployed, key: str) -> str:
    """The first 26 bytes of a key's value in etcd (printable), read as etcd's root."""
    return cluster.ssh("lab-1", ETCDCTL + f"get --print-value-only {key} | head -c 26 "
                       "| tr -c '[:print:]' '?'").stdout


def _restart_seconds(cluster: Deployed, master: str) -> float:
    """One apiserver restart: from `systemctl restart` to /readyz answering ok."""
    started = time.monotonic()
    command = f"systemctl restart kube-apiserver && until {READYZ}; do sleep 0.2; done"
    assert cluster.ssh(master, f"timeout 120 sh -c '{command}'").returncode == 0
    return time.monotonic() - started


def test_release_cluster_converges_serving_throughout(cluster: Deployed) -> None:
    assert _stored(cluster, "/registry/secrets/default/before").startswith(
        "k8s:enc:aescbc:v1:key1:")
    restart = _restart_seconds(cluster, "lab-2")  # the yardstick, before the reader starts
    time.sleep(10)  # lab-2 back in the node's balancer
    result, lines, elapsed = deploy_while_reading(cluster, NODE, "up")
    gap = longest_failure(lines)
    failed = [line for line in lines if line.endswith("fail")]
    print(result.stdout[-4000:])
    print(f"converge: {elapsed:.0f} s; {len(lines)} reads through {NODE}'s balancer, "
          f"{len(failed)} failed, longest failure {gap:.1f} s; one apiserver restart "
          f"(lab-2, to /readyz) {restart:.1f} s")
    assert len(lines) > 60, lines
    assert gap <= restart, f"reads failed for {gap:.1f} s in a row: {failed}"

    # Nothing lost, read with the operator's re-issued (RBAC-bound) kubeconfig.
    word = cluster.kubectl("get", "secret", "before", "-o", "jsonpath={.data.word}")
    assert base64.b64decode(word).decode() == "kept-secret"
    assert cluster.kubectl("get", "configmap", "before", "-o",
                           "jsonpath={.data.word}") == "kept-config"
    # etcd auth on; Secrets under the new secretbox key, the aescbc key kept, out of use.
    status = json.loads(cluster.ssh("lab-1", ETCDCTL + "auth status -w json").stdout)
    assert status["enabled"] is True, status
    assert _stored(cluster, "/registry/secrets/default/before") == "k8s:enc:secretbox:v1:key2:"
    ids = encryption.key_ids(cluster.state / "pki")
    assert [(k.name, k.provider, k.in_use) for k in ids] == [
        ("key1", "aescbc", False), ("key2", "secretbox", True)]
    # The controllers work again (the controller-manager's leader changed as apiservers
    # restarted): a new namespace gets its default ServiceAccount.
    waited = time.monotonic()
    cluster.kubectl("create", "namespace", "after-converge")
    cluster.kubectl("-n", "after-converge", "wait", "--for=create", "serviceaccount/default",
                    "--timeout=180s")
    print(f"converge: a new namespace's default ServiceAccount after "
          f"{time.monotonic() - waited:.1f} s")
    verify = cluster.deploy("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_rerun_after_converge_changes_nothing(cluster: Deployed) -> None:
    result = cluster.deploy("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 operations changed" in result.stdout, result.stdout
