"""etcd access control: what the probe's output says, and the etcdctl steps from there."""

from __future__ import annotations

from pathlib import Path

from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from tasks import etcd_access
from tasks.etcd_access import READ, READWRITE, SECTION, Access, Perm

M = Host("m1", "10.0.0.1", frozenset({"etcd", "masters"}))
N = Host("n1", "10.0.0.2", frozenset({"nodes"}))
CLUSTER = Cluster((M, N))
PREFIX = "/coreos.com/network"
# Captured from etcdctl 3.6.16 (auth on, flannel's role granted as planned).
PROBE = f"""{{"header":{{"revision":1}},"enabled":true,"authRevision":9}}
{SECTION}
{{"header":{{"revision":1}},"roles":["flannel","root"]}}
{SECTION}
{{"header":{{}},"perm":[{{"key":"L2NvcmVvcy5jb20vbmV0d29yay9jb25maWc="}},{{"permType":2,"key":"L2NvcmVvcy5jb20vbmV0d29yay9zdWJuZXRz","range_end":"L2NvcmVvcy5jb20vbmV0d29yay9zdWJuZXR0"}}]}}
{SECTION}
etcd-healthcheck-client {{"header":{{}},"roles":["root"]}}
flannel-m1 {{"header":{{}},"roles":["flannel"]}}
flannel-n1 {{"header":{{}},"roles":["flannel"]}}
flannel-gone {{"header":{{}},"roles":["flannel"]}}
kube-apiserver-etcd-client {{"header":{{}},"roles":["root"]}}
root {{"header":{{}},"roles":["root"]}}
"""


def test_probe_output_parses() -> None:
    access = etcd_access.parse(PROBE)
    assert access is not None and access.enabled
    assert access.roles == {"flannel", "root"}
    assert access.users["flannel-n1"] == {"flannel"}
    assert access.flannel == etcd_access.flannel_perms(PREFIX)


def test_unanswered_probe_is_none() -> None:
    assert etcd_access.parse("") is None
    assert etcd_access.parse(f"Error: context deadline exceeded\n{SECTION}\n") is None


def test_flannel_reads_its_config_and_writes_only_its_leases() -> None:
    assert etcd_access.flannel_perms(PREFIX) == {
        Perm(READ, f"{PREFIX}/config"),
        Perm(READWRITE, f"{PREFIX}/subnets", f"{PREFIX}/subnett")}


def test_fresh_etcd_gets_roles_users_then_auth() -> None:
    steps = etcd_access.plan(CLUSTER, PREFIX, Access())
    assert steps[:2] == ["role add flannel", "role add root"]
    assert "user add flannel-n1 --no-password" in steps
    assert "user grant-role flannel-n1 flannel" in steps
    assert "user grant-role kube-apiserver-etcd-client root" in steps
    assert "user grant-role root root" in steps
    assert f"role grant-permission flannel readwrite {PREFIX}/subnets {PREFIX}/subnett" in steps
    assert steps[-1] == "auth enable"


def test_converged_etcd_needs_nothing_but_the_removed_hosts_user_goes() -> None:
    access = etcd_access.parse(PROBE)
    assert access is not None
    assert etcd_access.plan(CLUSTER, PREFIX, access) == ["user delete flannel-gone"]


def test_a_wrong_grant_is_revoked_and_a_wrong_role_taken_back() -> None:
    access = Access(True, {"flannel-n1": frozenset({"root", "flannel"})}, {"flannel", "root"},
                    frozenset({Perm(READWRITE, "/registry", "/registrz")}))
    steps = etcd_access.plan(CLUSTER, PREFIX, access)
    assert "role revoke-permission flannel /registry /registrz" in steps
    assert "user revoke-role flannel-n1 root" in steps
    assert "auth enable" not in steps


def test_probe_is_one_command_through_the_etcdctl_environment(tmp_path: Path) -> None:
    ctx = DeployContext(CLUSTER, {"kube_config_dir": "/etc/kubernetes"}, tmp_path)
    command = etcd_access.probe(ctx)
    assert command.count(". /etc/kubernetes/etcdctl.env && etcdctl") == 5
    assert command.count(f"echo {SECTION}") == 3


def test_steps_run_in_rounds_made_then_granted_then_auth() -> None:
    steps = etcd_access.plan(CLUSTER, PREFIX, Access())
    made, granted, last = etcd_access.rounds(steps)
    assert sorted(made + granted + last) == sorted(steps)
    assert all(s.startswith(("role add", "user add")) for s in made)
    assert "user grant-role root root" in granted and last == ["auth enable"]
    assert etcd_access.rounds(["user delete flannel-gone"]) == [["user delete flannel-gone"]]
