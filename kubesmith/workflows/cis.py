"""`deploy.py cis`: kube-bench on every master, etcd member and node; fail on undocumented FAILs."""

from __future__ import annotations

from kubesmith import certificates, cis
from kubesmith.binaries import sources
from kubesmith.runner import DeployError, Runner
from tasks import _ops


def run(runner: Runner) -> list[cis.HostResult]:
    """Install and run kube-bench per host, print counts and FAILs; raise on new FAILs."""
    ctx = runner.ctx
    local = sources.ensure("kube-bench", ctx.versions)
    exceptions = cis.load_exceptions()
    config = _ops.render("cis/config.yaml.j2", benchmark=cis.BENCHMARK, **ctx.data)
    kubeconfig = f"{ctx.data['kube_config_dir']}/{certificates.KUBESMITH_USER}.kubeconfig"
    chosen = tuple(h for h in ctx.cluster.hosts if cis.targets(ctx.cluster, h))
    results: list[cis.HostResult] = []
    with runner.connect("cis", chosen) as connected:
        for remote in connected:
            host_targets = cis.targets(ctx.cluster, ctx.cluster.host(remote.name))
            cis.install(remote, local, config)
            report = cis.bench(remote, host_targets, kubeconfig)
            results.append(cis.parse(remote.name, host_targets, report))
    order = [h.name for h in chosen]
    results.sort(key=lambda r: order.index(r.host))
    for line in cis.table(results, exceptions):
        runner.out(line)
    new = sorted({f"{r.host} {i}" for r in results for i, _t in r.fails if i not in exceptions})
    if new:
        raise DeployError(f"cis: {len(new)} FAIL outside {cis.EXCEPTIONS.name}: {', '.join(new)}")
    runner.out(f"cis: {cis.BENCHMARK}, 0 FAIL outside the documented exceptions "
               f"({cis.EXCEPTIONS.name})")
    return results
