"""`deploy.py conformance`: the test images imported on every node, then the Kubernetes
conformance suite (ginkgo + e2e.test) from the control machine against the admin kubeconfig,
with progress, a summary by SIG, and results as Sonobuoy and hydrophone leave them."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import gevent
from pyinfra.api.host import Host as PyinfraHost

from kubesmith import conformance
from kubesmith.binaries import cache, sources
from kubesmith.binaries.e2e_images import archive_refs
from kubesmith.runner import DeployError, Runner
from tasks import runtime

REMOTE = "/var/lib/kubesmith/conformance"
PROGRESS_EVERY = 30.0  # seconds between progress lines
LABEL = "kubesmith.sha256"  # the image's tarball, so a rebuilt image is imported again
PINNED = "io.cri-containerd.pinned=pinned"
POLL = 2.0  # seconds between reads of e2e.log


def import_images(remote: PyinfraHost, image_dir: Path, sums: dict[str, str]) -> list[str]:
    """Copy and import every test image (tarball: sha256 in `sums`) the node lacks at that sum;
    label it with the sum and pin it (kubelet's image GC must not remove what cannot be pulled)."""
    _ok, listed = remote.run_shell_command("ctr -n k8s.io images ls")
    have = {(line.split()[0], label) for line in listed.stdout_lines[1:] if line.split()
            for label in line.split()[-1].split(",")}
    imported = []
    for tarball, digest in sorted(sums.items()):
        refs = archive_refs(image_dir / tarball)
        label = f"{LABEL}={digest}"
        if all((ref, label) in have for ref in refs):
            continue
        dest = f"{REMOTE}/{tarball}"
        remote.run_shell_command(f"mkdir -p -m 700 {REMOTE}")
        if not remote.put_file(str(image_dir / tarball), dest):
            raise DeployError(f"{remote.name}: could not copy {tarball}")
        labels = " && ".join(f"ctr -n k8s.io images label {shlex.quote(ref)} {label} {PINNED}"
                             for ref in refs)
        ok, output = remote.run_shell_command(
            f"{runtime.IMPORT} {shlex.quote(dest)} && {labels}; status=$?; "
            f"rm -f {shlex.quote(dest)}; exit $status")
        if not ok:
            raise DeployError(f"{remote.name}: ctr images import {tarball} failed: "
                              f"{' '.join(output.stderr_lines)[-300:]}")
        imported.append(tarball)
    return imported


def _plan(command: list[str]) -> tuple[int, int]:
    """Run ginkgo's dry run of the same selection: (specs selected, specs in the suite)."""
    dry = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        return conformance.planned(dry.stdout + dry.stderr)
    except ValueError:
        raise DeployError("conformance: ginkgo --dry-run failed: "
                          + (dry.stdout + dry.stderr)[-800:]) from None


def _stream(command: list[str], log: Path, total: int, out: conformance.Progress,
            say: Callable[[str], None]) -> int:
    """Run ginkgo with its output to e2e.log, printing progress from it; return its exit code
    (ginkgo is stopped if this is interrupted)."""
    start = last = time.monotonic()
    with open(log, "wb") as sink, open(log, "rb") as reader:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            while True:
                running = proc.poll() is None
                if running:
                    time.sleep(POLL)
                out.feed(reader.read().decode(errors="replace"))
                now = time.monotonic()
                if now - last >= PROGRESS_EVERY:
                    last = now
                    say(f"conformance: {out.done}/{total} specs done, {out.failed} failed, "
                        f"{int(now - start) // 60}m{int(now - start) % 60:02d}s")
                if not running:
                    return proc.returncode
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


def run(runner: Runner, focus: str | None, quick: bool, results: str | None,
        procs: int) -> conformance.Summary:
    """Import the images, run the selected specs, summarize; raise if any spec failed."""
    ctx = runner.ctx
    e2e = sources.ensure("e2e", ctx.versions)
    image_dir = sources.ensure("e2e-images", ctx.versions)
    with runner.connect("conformance", ctx.cluster.nodes) as connected:
        sums = cache.read_manifest(image_dir)
        jobs = {r.name: gevent.spawn(import_images, r, image_dir, sums) for r in connected}
        gevent.joinall(list(jobs.values()), raise_error=True)  # nodes in parallel
        for name, job in sorted(jobs.items()):
            runner.out(f"conformance: {name}: {len(job.value)} test images imported, "
                       f"{len(sums) - len(job.value)} already present")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(results) if results else ctx.state / "conformance" / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    selection = conformance.Selection.of(focus, quick)
    args = (str(e2e / "ginkgo"), str(e2e / "e2e.test"), selection, procs,
            str(ctx.state / "admin.kubeconfig"))
    with tempfile.TemporaryDirectory() as dry_dir:  # its report must not pass for the run's
        selected, suite = _plan(conformance.ginkgo_command(*args, Path(dry_dir), dry_run=True))
    runner.out(f"conformance: {selected} of {suite} specs selected, {procs} in parallel; "
               f"log {out_dir / 'e2e.log'}")
    start = time.monotonic()
    (out_dir / "junit_01.xml").unlink(missing_ok=True)  # a report left by an earlier run
    code = _stream(conformance.ginkgo_command(*args, out_dir), out_dir / "e2e.log", selected,
                   conformance.Progress(), runner.out)
    junit = out_dir / "junit_01.xml"
    if not junit.exists():
        raise DeployError(f"conformance: ginkgo exited {code} without {junit}; see "
                          f"{out_dir / 'e2e.log'}")
    summary = conformance.summarize(junit, selection)
    for line in summary.lines():
        runner.out(line)
    elapsed = int(time.monotonic() - start)
    runner.out(f"conformance: {summary.total('passed')} passed, {summary.total('failed')} "
               f"failed, {summary.total('skipped')} skipped in {elapsed // 60}m{elapsed % 60:02d}s;"
               f" results in {out_dir}")
    if summary.total("failed") or code != 0:
        raise DeployError(f"conformance: {summary.total('failed')} specs failed (ginkgo exit "
                          f"{code})")
    return summary
