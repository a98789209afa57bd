"""`deploy.py conformance --quick` on a fresh 3-host lab (lab-1 master, lab-2 and lab-3 nodes):
the official e2e.test passes the fixed subset, leaves Sonobuoy-style results, and a second run
imports no image again. Opt in: `pytest -m conformance tests/lab/test_conformance.py`."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from kubesmith import conformance
from tests.lab.conftest import missing_binaries

pytestmark = [pytest.mark.lab, pytest.mark.conformance]


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    missing = missing_binaries(["e2e", "e2e-images"])
    if missing:
        pytest.skip(f"binary cache lacks {', '.join(missing)}: run `python deploy.py binaries "
                    "e2e e2e-images`")
    return cluster_factory(3)


def test_quick_conformance_passes_and_leaves_results(cluster, tmp_path) -> None:
    results = tmp_path / "results"
    first = cluster.deploy("conformance", "--quick", "--junit", str(results))
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert re.search(r"lab-2: \d+ test images imported", output), output
    cases = [c for c in ET.parse(results / "junit_01.xml").getroot().iter("testcase")
             if re.search(conformance.Selection.of(None, True).focus, c.get("name", ""))]
    selected = int(re.search(r"conformance: (\d+) of \d+ specs selected", output).group(1))
    assert selected >= len(conformance.QUICK)  # every pattern names at least one spec
    assert len(cases) == selected, output
    assert all(c.get("status") == "passed" for c in cases), output
    assert (results / "e2e.log").stat().st_size > 0
    assert re.search(rf"conformance: {len(cases)} passed, 0 failed", output), output


def test_rerun_focused_spec_imports_nothing(cluster, tmp_path) -> None:
    again = cluster.deploy("conformance", "--focus", r"Pods should be submitted and removed",
                           "--junit", str(tmp_path / "again"))
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert "lab-2: 0 test images imported" in output and "lab-3: 0 test images imported" in output
    assert "conformance: 1 passed, 0 failed" in output, output
