"""`deploy.py rotate-encryption-key`: upstream's rotation of a Secrets encryption key across
several apiservers, the cluster serving throughout; resumable, the ring recording its phase.

1. add:     the new key readable everywhere (listed after the current ones); every apiserver
            restarted, one at a time, each ready and back in every node's balancer before the next.
2. primary: the new key first (it writes) everywhere, restarted the same way; then every Secret
            is rewritten through the apiserver and checked in etcd to be under the new key.
3. drop:    the old keys out of the configuration, restarted the same way. They stay in the ring
            (state/<cluster>/pki/encryption.json, 0600): a snapshot taken before needs them.

`up` runs the same steps when the ring's writing key is not secretbox (a cluster bootstrapped
with aescbc) or a rotation was interrupted."""

from __future__ import annotations

import base64
import json
import time

from kubesmith import encryption, membership
from kubesmith.encryption import Ring
from kubesmith.kubectl import kubectl
from kubesmith.runner import DeployError, Report, Runner
from tasks import etcd
from tasks.phases import BALANCERS, CONTROL_PLANE

SECRETS_PREFIX = "/registry/secrets/"
REWRITE_ATTEMPTS = 3  # a Secret changed between get and replace is a conflict: read again


def run(runner: Runner) -> Report:
    """Start a rotation (or resume the one in progress) and carry it to its end."""
    start = time.monotonic()
    ring = rotate(runner)
    return runner.finish(start, f"Secrets encrypted with {ring.primary.provider} "
                                f"{ring.primary.name}; old keys kept in "
                                f"{runner.ctx.pki.path(encryption.RING)}")


def rotate(runner: Runner) -> Ring:
    """Each phase recorded in the ring before it is rolled out, so a re-run resumes it."""
    directory = runner.ctx.pki.directory
    ring = encryption.load(directory)
    if ring is None:
        raise DeployError(f"no encryption keys in {directory}: bootstrap the cluster with "
                          "`python deploy.py up` first")
    if ring.rotation is None:
        ring = encryption.begin(ring)
        encryption.save(directory, ring)
        runner.out(f"[encryption] new key {ring.rotation.new} ({encryption.PROVIDER}) replaces "
                   f"{', '.join(ring.rotation.old)}")
    else:
        runner.out(f"[encryption] resuming the rotation to {ring.rotation.new} at phase "
                   f"{ring.rotation.phase}")
    while ring.rotation is not None:
        phase = ring.rotation.phase
        runner.out(f"[encryption] {phase}: providers "
                   f"{', '.join(f'{k.provider} {k.name}' for k in ring.active)}")
        restart_apiservers(runner)
        if phase == "primary":
            rewrite_secrets(runner)
            check_stored(runner, ring.key(ring.rotation.new))
        ring = encryption.advance(ring)
        encryption.save(directory, ring)
    return ring


def restart_apiservers(runner: Runner) -> None:
    """The encryption config on each master in turn, its apiserver restarted when it changed and
    ready (/readyz), then back in every node's balancer before the next master."""
    cluster = runner.ctx.cluster
    for master in cluster.masters:
        runner.run(CONTROL_PLANE, (master,))
        runner.run(BALANCERS, BALANCERS.on(cluster))


def rewrite_secrets(runner: Runner) -> None:
    """Read and replace every Secret (kubesmith's own credential): the apiserver stores each one
    again, under the key that now writes."""
    ctx = runner.ctx
    for attempt in range(1, REWRITE_ATTEMPTS + 1):
        listed = kubectl(ctx, "get", "secrets", "--all-namespaces", "-o", "json", timeout=120)
        if listed.returncode != 0:
            raise DeployError(f"kubectl get secrets: {listed.stderr.strip()[-300:]}")
        count = len(json.loads(listed.stdout).get("items", ()))
        replaced = kubectl(ctx, "replace", "-f", "-", stdin=listed.stdout, timeout=300)
        if replaced.returncode == 0:
            runner.out(f"[encryption] {count} Secrets rewritten")
            return
        if attempt == REWRITE_ATTEMPTS:
            raise DeployError(f"kubectl replace of every Secret failed {attempt} times: "
                              f"{replaced.stderr.strip()[-300:]}")
        runner.out(f"[encryption] rewrite attempt {attempt}: a Secret changed meanwhile; again")


def check_stored(runner: Runner, key: encryption.Key) -> None:
    """Every Secret in etcd is stored under the key (read as etcd's root from a member): the
    old keys may leave the configuration only then."""
    with membership.peer(runner) as peer:
        output = peer.etcdctl(etcd.quoted("get", "--prefix", SECRETS_PREFIX, "-w", "json"))
    try:
        listing = json.loads(output)
    except ValueError:
        raise DeployError(f"etcdctl get {SECRETS_PREFIX}: not JSON: {output[:200]!r}") from None
    others = stored_elsewhere(listing, key)
    if others:
        raise DeployError(f"{len(others)} Secrets are not stored under {key.name} yet (e.g. "
                          f"{', '.join(others[:3])}): run `python deploy.py "
                          "rotate-encryption-key` again")
    runner.out(f"[encryption] {len(listing.get('kvs', ()))} Secrets in etcd, every one under "
               f"{key.provider} {key.name}")


def stored_elsewhere(listing: dict, key: encryption.Key) -> list[str]:
    """The etcd keys (namespace/name) of `etcdctl get -w json` values not under the key."""
    prefix = key.prefix.encode()
    return [base64.b64decode(kv["key"]).decode(errors="replace").removeprefix(SECRETS_PREFIX)
            for kv in listing.get("kvs", ())
            if not base64.b64decode(kv.get("value", "")).startswith(prefix)]
