"""The Kubernetes conformance suite against a kubesmith cluster: which specs run, the ginkgo
command line (as upstream's test/conformance/image/run_e2e.sh builds it), progress read from its
output, and the summary by SIG read from the JUnit report it leaves."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

CONFORMANCE = r"\[Conformance\]"
# --quick: networking data paths, cluster DNS, Services and a few apps/apimachinery/node specs;
# each a [Conformance] spec, all of them within 10 minutes on the 3-host lab.
QUICK = (
    r"Networking Granular Checks: Pods should function for (intra|node)-pod communication",
    r"\[sig-network\] DNS should provide DNS for (the cluster|services|pods for Hostname)",
    r"\[sig-network\] Services should serve (a basic endpoint|multiport endpoints) from pods",
    r"\[sig-network\] Services should be able to create a functioning NodePort service",
    r"\[sig-apps\] Deployment RollingUpdateDeployment should delete old pods",
    r"\[sig-apps\] ReplicaSet should serve a basic image on each replica",
    r"\[sig-apps\] Job should run a job to completion when tasks sometimes fail",
    r"\[sig-api-machinery\] CustomResourceDefinition resources .* Simple "
    r"CustomResourceDefinition creating/deleting",
    r"\[sig-api-machinery\] AdmissionWebhook .* should be able to deny pod and configmap",
    r"\[sig-node\] Pods should be submitted and removed",
    r"\[sig-node\] Container Runtime blackbox test on terminated container should report "
    r"termination message from file",
    r"\[sig-cli\] Kubectl logs logs should be able to retrieve and filter logs",
)
SIG = re.compile(r"\[sig-([a-z-]+)\]")
RAN = re.compile(r"Ran (\d+) of (\d+) Specs")
FAILED = re.compile(r"• \[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\]")


@dataclass(frozen=True)
class Selection:
    """The specs to run: ginkgo focus and skip regular expressions."""

    focus: str
    skip: str = ""

    @classmethod
    def of(cls, focus: str | None, quick: bool) -> Selection:
        """--focus narrows the conformance specs, --quick picks the fixed subset."""
        if quick:
            return cls("(" + "|".join(QUICK) + ").*" + CONFORMANCE)
        if focus:
            return cls(f"({focus}).*{CONFORMANCE}|{CONFORMANCE}.*({focus})")
        return cls(CONFORMANCE)


def ginkgo_command(ginkgo: str, e2e_test: str, selection: Selection, procs: int,
                   kubeconfig: str, results: Path, dry_run: bool = False) -> list[str]:
    """ginkgo running e2e.test in parallel ([Serial] specs run alone at the end, as ginkgo
    schedules specs decorated Serial), reports into the results directory."""
    command = [ginkgo, f"--focus={selection.focus}", "--no-color", "--timeout=24h",
               f"--procs={1 if dry_run else procs}"]
    if selection.skip:
        command.append(f"--skip={selection.skip}")
    if dry_run:
        command.append("--dry-run")
    return [*command, e2e_test, "--", f"--kubeconfig={kubeconfig}", "--provider=skeleton",
            "--disable-log-dump", f"--report-dir={results}", "-v=2"]


def planned(output: str) -> tuple[int, int]:
    """(selected, total) specs from ginkgo's closing "Ran N of M Specs" line."""
    match = RAN.search(output)
    if match is None:
        raise ValueError("ginkgo printed no 'Ran N of M Specs' line")
    return int(match.group(1)), int(match.group(2))


@dataclass
class Progress:
    """Specs finished so far, counted from ginkgo's default reporter: a bullet per spec run,
    "• [FAILED]" (or PANICKED, TIMEDOUT) starting a failed one's report."""

    done: int = 0
    failed: int = 0
    partial: str = ""

    def feed(self, chunk: str) -> None:
        """Count the bullets of a chunk of output and the failures of its complete lines."""
        self.done += chunk.count("•")
        lines = (self.partial + chunk).split("\n")
        self.partial = lines.pop()[-200:]
        self.failed += sum(1 for line in lines if FAILED.search(line))


@dataclass
class Summary:
    """Outcome of a run read from its JUnit report: counts per SIG and every failure."""

    counts: dict[str, Counter] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def total(self, status: str) -> int:
        """Specs of one status (passed, failed, skipped) across SIGs."""
        return sum(c[status] for c in self.counts.values())

    def lines(self) -> list[str]:
        """A table by SIG, then each failure with its first error line."""
        out = [f"{'sig':<22} {'passed':>7} {'failed':>7} {'skipped':>8}"]
        for sig, c in sorted(self.counts.items()):
            out.append(f"{sig:<22} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8}")
        out.append(f"{'total':<22} {self.total('passed'):>7} {self.total('failed'):>7} "
                   f"{self.total('skipped'):>8}")
        out += [f"FAILED {name}\n    {error}" for name, error in self.failures]
        return out


def summarize(junit: Path, selection: Selection) -> Summary:
    """Per-SIG counts of the selected specs in a ginkgo JUnit report (unselected specs, which
    it lists as skipped, are not counted)."""
    focus = re.compile(selection.focus)
    skip = re.compile(selection.skip) if selection.skip else None
    summary = Summary()
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if not focus.search(name) or (skip and skip.search(name)):
            continue
        status = case.get("status", "")
        if case.find("failure") is not None or case.find("error") is not None:
            status = "failed"
        status = status if status in ("passed", "failed") else "skipped"
        match = SIG.search(name)
        summary.counts.setdefault(match.group(1) if match else "other", Counter())[status] += 1
        if status == "failed":
            summary.failures.append((name, first_error(case)))
    return summary


def first_error(case: ET.Element) -> str:
    """The first non-empty line of a failed testcase's failure message."""
    for tag in ("failure", "error"):
        node = case.find(tag)
        if node is not None:
            text = node.get("message") or node.text or ""
            for line in text.splitlines():
                if line.strip():
                    return line.strip()[:300]
    return "(no message)"
