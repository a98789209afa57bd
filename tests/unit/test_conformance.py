"""The conformance runner's pure parts: spec selection, ginkgo's command line, progress from its
output, the summary from its JUnit report, and the test images' names and file modes."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from kubesmith import conformance
from kubesmith.binaries import e2e_images, images
from kubesmith.binaries.recipes import COMPONENTS, E2E_IMAGE_FILES

QUICK_NAMES = (
    "[sig-network] Networking Granular Checks: Pods should function for intra-pod communication:"
    " http [NodeConformance] [Conformance]",
    "[sig-network] DNS should provide DNS for the cluster [Conformance]",
)
JUNIT = """<?xml version="1.0"?>
<testsuites><testsuite name="Kubernetes e2e suite">
<testcase name="[It] [sig-network] DNS should provide DNS for the cluster [Conformance]"
 status="passed" time="12"/>
<testcase name="[It] [sig-apps] Job should run a job to completion [Conformance]" status="failed">
 <failure message="&#10;timed out waiting for the condition&#10;second line" type="failed"/>
</testcase>
<testcase name="[It] [sig-node] Pods should be updated [Conformance]" status="skipped">
 <skipped message="skipped: needs 3 nodes"/>
</testcase>
<testcase name="[It] [sig-storage] CSI mock volume works" status="skipped"/>
<testcase name="[It] [sig-apps] StatefulSet scales [Serial] [Conformance]" status="passed"/>
</testsuite></testsuites>
"""


def test_selection_default_quick_and_focus() -> None:
    assert conformance.Selection.of(None, False).focus == r"\[Conformance\]"
    quick = re.compile(conformance.Selection.of(None, True).focus)
    assert all(quick.search(name) for name in QUICK_NAMES)
    assert not quick.search("[sig-network] DNS should provide DNS for the cluster")  # no tag
    assert not quick.search("[sig-apps] StatefulSet scales [Serial] [Conformance]")
    focused = re.compile(conformance.Selection.of("DNS", False).focus)
    assert focused.search(QUICK_NAMES[1]) and not focused.search(QUICK_NAMES[0])


def test_ginkgo_command(tmp_path: Path) -> None:
    sel = conformance.Selection(r"\[Conformance\]", r"\[Disruptive\]")
    command = conformance.ginkgo_command("/c/ginkgo", "/c/e2e.test", sel, 6, "/s/admin.kc",
                                         tmp_path)
    assert command[0] == "/c/ginkgo" and "--procs=6" in command
    assert "--skip=\\[Disruptive\\]" in command and "--dry-run" not in command
    tail = command[command.index("--"):]
    assert command[command.index("--") - 1] == "/c/e2e.test"
    assert "--kubeconfig=/s/admin.kc" in tail and f"--report-dir={tmp_path}" in tail
    dry = conformance.ginkgo_command("/c/ginkgo", "/c/e2e.test", sel, 6, "k", tmp_path, True)
    assert "--dry-run" in dry and "--procs=1" in dry


def test_planned_reads_ran_line() -> None:
    assert conformance.planned("...\nRan 424 of 7144 Specs in 1.3 seconds\n") == (424, 7144)
    with pytest.raises(ValueError):
        conformance.planned("panic: no kubeconfig")


def test_progress_counts_bullets_and_failures_across_chunks() -> None:
    progress = conformance.Progress()
    progress.feed("SSS•S•")
    progress.feed("\n• [FAI")
    progress.feed("LED] [3.2 seconds]\n[sig-apps] Job x\n•")
    assert (progress.done, progress.failed) == (4, 1)


def test_summary_by_sig_counts_only_selected_specs(tmp_path: Path) -> None:
    junit = tmp_path / "junit_01.xml"
    junit.write_text(JUNIT)
    summary = conformance.summarize(junit, conformance.Selection(r"\[Conformance\]",
                                                                 r"\[Serial\]"))
    assert summary.counts["network"]["passed"] == 1
    assert summary.counts["apps"]["failed"] == 1
    assert summary.counts["node"]["skipped"] == 1
    assert "storage" not in summary.counts  # not selected: not counted as skipped
    assert summary.total("passed") == 1  # the [Serial] spec is skipped by the selection
    assert summary.failures == [("[It] [sig-apps] Job should run a job to completion "
                                 "[Conformance]", "timed out waiting for the condition")]
    assert summary.lines()[-1].endswith("timed out waiting for the condition")


MANIFEST = """
	initRegistry = RegistryList{
		PromoterE2eRegistry:     "registry.k8s.io/e2e-test-images",
		GcRegistry:              "registry.k8s.io",
	}
	configs[Agnhost] = Config{list.PromoterE2eRegistry, "agnhost", "2.56"}
	configs[Pause] = Config{list.GcRegistry, "pause", "3.10.1"}
"""


def test_manifest_refs() -> None:
    assert e2e_images.manifest_refs(MANIFEST) == {
        "Agnhost": "registry.k8s.io/e2e-test-images/agnhost:2.56",
        "Pause": "registry.k8s.io/pause:3.10.1",
    }


def test_every_tarball_has_tags_and_a_builder() -> None:
    assert set(e2e_images.TAGS) == set(E2E_IMAGE_FILES)
    assert set(e2e_images._trees(Path("/e2e"), Path("/m"), Path("/etcd"))) == set(E2E_IMAGE_FILES)
    # The cached component holds exactly the suite's images, each once (a literal, not the
    # recipe's own constant).
    files = COMPONENTS["e2e-images"].files
    assert len(files) == len(set(files)) and set(files) == {
        "agnhost.tar", "busybox.tar", "jessie-dnsutils.tar", "kitten.tar", "nautilus.tar",
        "httpd.tar", "nginx.tar", "nonewprivs.tar", "sample-apiserver.tar", "etcd.tar"}
    assert COMPONENTS["e2e"].optional and COMPONENTS["e2e-images"].optional


def test_tree_layer_keeps_modes_and_files_win_over_links(tmp_path: Path) -> None:
    tree = e2e_images.Tree()
    tree.link("usr/bin/nc", "/bin/busybox")
    tree.file("usr/bin/nc", b"openbsd")
    tree.link("usr/bin/nc", "/bin/busybox")  # a later applet link does not replace the tool
    tree.file("usr/local/bin/nnp", b"elf", 0o4755)
    tree.dirs["tmp"] = 0o1777
    with tarfile.open(fileobj=io.BytesIO(tree.layer())) as layer:
        assert layer.getmember("usr/bin/nc").isfile()
        assert layer.getmember("usr/local/bin/nnp").mode == 0o4755
        assert layer.getmember("tmp").mode == 0o1777
        assert layer.getmember("usr/local/bin").isdir()


def test_archive_refs_reads_every_tag(tmp_path: Path) -> None:
    out = tmp_path / "httpd.tar"
    refs = ["r/httpd:2.4.38-4", "r/httpd:2.4.39-4"]
    images.write_archive(refs, e2e_images.Tree().layer(), {}, out)
    assert e2e_images.archive_refs(out) == refs
