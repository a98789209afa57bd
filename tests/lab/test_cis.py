"""`deploy.py cis` on a fresh lab cluster: kube-bench finds no FAIL outside the exceptions."""

from __future__ import annotations

import re

import pytest

from kubesmith import cis
from tests.lab.conftest import missing_binaries

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    if missing_binaries(["kube-bench"]):
        pytest.skip("kube-bench is not in the binary cache: run `python deploy.py binaries "
                    "kube-bench`")
    return cluster_factory(3)


def test_cis_has_no_fail_outside_the_documented_exceptions(cluster) -> None:
    result = cluster.deploy("cis")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(lab-\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", line)
        if match:
            host, host_targets, *numbers = match.groups()
            counts[host] = (host_targets, *map(int, numbers))
    assert set(counts) == {"lab-1", "lab-2", "lab-3"}, output
    assert counts["lab-1"][0] == "master,controlplane,etcd,policies"
    assert counts["lab-2"][0] == counts["lab-3"][0] == "node"
    assert all(c[1] > 0 for c in counts.values()), output  # PASS: kube-bench found the daemons
    exceptions = cis.load_exceptions()
    fails = re.findall(r"^FAIL (\S+) (\S+) ", result.stdout, re.MULTILINE)
    assert sum(c[2] for c in counts.values()) == len(fails)
    assert {check for _host, check in fails} <= set(exceptions), output
    assert "PRIVATE KEY" not in output


def test_cis_rerun_uploads_nothing_and_changes_no_service(cluster) -> None:
    """A second run reuses the installed kube-bench; the cluster's daemons keep running."""
    before = cluster.ssh("lab-1", "stat -c %Y /var/lib/kubesmith/cis/kube-bench").stdout
    again = cluster.deploy("cis")
    assert again.returncode == 0, again.stdout + again.stderr
    assert cluster.ssh("lab-1", "stat -c %Y /var/lib/kubesmith/cis/kube-bench").stdout == before
    assert "0 operations changed" in cluster.deploy("up").stdout
