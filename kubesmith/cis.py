"""kube-bench (CIS Kubernetes Benchmark) on the hosts: targets per role, install, run, parse."""

from __future__ import annotations

import io
import json
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra.api.host import Host as PyinfraHost

from kubesmith import settings
from kubesmith.binaries import cache
from kubesmith.model import Cluster, Host
from kubesmith.runner import DeployError

# The newest benchmark in kube-bench v0.12.0's cfg/ (written for Kubernetes 1.28-1.31).
BENCHMARK = "cis-1.10"
REMOTE = "/var/lib/kubesmith/cis"
EXCEPTIONS = settings.PROJECT / "docs" / "cis-exceptions.toml"
STATUSES = ("PASS", "FAIL", "WARN", "INFO")


@dataclass
class HostResult:
    """One host's kube-bench outcome: counts per status and the FAILs as (id, text)."""

    host: str
    targets: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    fails: list[tuple[str, str]] = field(default_factory=list)


def load_exceptions(path: Path = EXCEPTIONS) -> dict[str, str]:
    """Documented exceptions: check id -> why it does not apply (docs/cis-exceptions.toml)."""
    entries = tomllib.loads(path.read_text())["exception"]
    return {str(e["id"]): str(e["reason"]) for e in entries}


def targets(cluster: Cluster, me: Host) -> list[str]:
    """kube-bench targets for a host's roles; cluster-wide policies on the first master only."""
    found = []
    if me.has("masters"):
        found += ["master", "controlplane"]
    if me.has("etcd"):
        found.append("etcd")
    if cluster.masters and me == cluster.masters[0]:
        found.append("policies")
    if me.has("nodes"):
        found.append("node")
    return found


def parse(host: str, host_targets: list[str], report: dict) -> HostResult:
    """Counts and FAILs from kube-bench's --json report."""
    result = HostResult(host, host_targets, {s: 0 for s in STATUSES})
    for control in report.get("Controls") or []:
        for group in control.get("tests") or []:
            for check in group.get("results") or []:
                status = check["status"]
                result.counts[status] = result.counts.get(status, 0) + 1
                if status == "FAIL":
                    result.fails.append((check["test_number"], check["test_desc"]))
    return result


def _remote_sums(host: PyinfraHost) -> dict[str, str]:
    """sha256 of the files already installed on the host: {name: sum}."""
    _ok, output = host.run_shell_command(
        f"cd {REMOTE} 2>/dev/null && sha256sum kube-bench kube-bench-cfg.tar.gz 2>/dev/null")
    return {name: digest for digest, _sep, name in
            (line.partition("  ") for line in output.stdout_lines)}


def install(host: PyinfraHost, local: Path, config: str) -> None:
    """Copy kube-bench and its cfg/ (when their sums differ) and the kubesmith path override."""
    sums = cache.read_manifest(local)
    have = _remote_sums(host)
    host.run_shell_command(f"mkdir -p -m 700 {REMOTE}")
    for name in ("kube-bench", "kube-bench-cfg.tar.gz"):
        if have.get(name) != sums[name]:
            host.put_file(str(local / name), f"{REMOTE}/{name}")
    if have.get("kube-bench-cfg.tar.gz") != sums["kube-bench-cfg.tar.gz"]:
        host.run_shell_command(f"cd {REMOTE} && rm -rf cfg && tar xzf kube-bench-cfg.tar.gz")
    host.run_shell_command(f"chmod 700 {REMOTE}/kube-bench")
    host.put_file(io.StringIO(config), f"{REMOTE}/cfg/{BENCHMARK}/config.yaml")


def bench_command(host_targets: list[str], kubeconfig: str) -> str:
    """kube-bench on a host, reading the cluster through a kubeconfig, printing JSON."""
    return (f"cd {REMOTE} && KUBECONFIG={shlex.quote(kubeconfig)} ./kube-bench run --benchmark "
            f"{BENCHMARK} --targets {shlex.quote(','.join(host_targets))} --config-dir "
            f"{REMOTE}/cfg --json")


def bench(host: PyinfraHost, host_targets: list[str], kubeconfig: str) -> dict:
    """Run kube-bench on the host and return its JSON report."""
    ok, output = host.run_shell_command(bench_command(host_targets, kubeconfig))
    try:
        return json.loads("\n".join(output.stdout_lines))
    except ValueError:
        raise DeployError(f"{host.name}: kube-bench failed (ok={ok}): "
                          f"{' '.join(output.stderr_lines)[-500:]}") from None


def table(results: list[HostResult], exceptions: dict[str, str]) -> list[str]:
    """Per-host counts, then every FAIL with its id and text (and whether it is an exception)."""
    lines = [f"{'host':<12} {'targets':<36} " + " ".join(f"{s:>5}" for s in STATUSES)]
    for r in results:
        lines.append(f"{r.host:<12} {','.join(r.targets):<36} "
                     + " ".join(f"{r.counts.get(s, 0):>5}" for s in STATUSES))
    for r in results:
        for check_id, text in r.fails:
            note = "  [documented exception]" if check_id in exceptions else ""
            lines.append(f"FAIL {r.host} {check_id} {text}{note}")
    return lines
