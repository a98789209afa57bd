"""--dry changes nothing locally: no PKI written, no binaries built, every task still prepares
(files that would be generated count as pending uploads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesmith import inventory, settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext
from kubesmith.workflows import steps

GROUPS: inventory.Groups = {
    "etcd": [("m1", {"address": "192.0.2.10", "iface": "eth0"})],
    "masters": [("m1", {"address": "192.0.2.10", "iface": "eth0"})],
    "nodes": [("n1", {"address": "192.0.2.21"}), ("n2", {"address": "192.0.2.22"})],
}


def _ctx(state: Path) -> DeployContext:
    data = {**settings.group_data(), "addons": []}  # add-on images are required, never built
    return DeployContext(inventory.to_cluster(GROUPS, data), data, state, GROUPS)


def test_prepare_local_dry_writes_nothing(tmp_path: Path, empty_cache: Path) -> None:
    state = tmp_path / "state"
    printed: list[str] = []
    steps.prepare_local(_ctx(state), printed.append, dry=True)
    assert not state.exists() and not empty_cache.exists()
    assert any(line.startswith("[binaries] would build kubernetes ") for line in printed)
    planned = next(line for line in printed if line.startswith("[pki] would make or renew"))
    assert "kubernetes-ca (missing)" in planned and "admin (new kubernetes-ca)" in planned
    assert "encryption.json (missing)" in planned


def test_every_task_prepares_dry_on_a_fresh_state(tmp_path: Path, empty_cache: Path,
                                                  run_tasks) -> None:
    ctx = _ctx(tmp_path / "state")
    ctx.dry = True
    recording = run_tasks(ctx)
    assert recording.refused == {}
    assert not ctx.state.exists() and not empty_cache.exists()
    written = [i for ops in recording.ops.values() for name, kw in ops
               if name in ("write", "fetch") for i in kw["files"]]
    uploads = [i.dest for i in written]
    # Keys and binaries that do not exist yet are pending transfers that never read them.
    assert "/etc/kubernetes/pki/kubesmith.key" in uploads and "/usr/local/bin/etcd" in uploads
    encryption = next(i.content for i in written if i.dest.endswith("encryption-config.yaml"))
    assert "secret: (generated-by-this-deploy)" in encryption


def _fake_complete_cache(root: Path, data: dict[str, object]) -> None:
    """Every component at its pinned version, each file present and matching its manifest
    (stand-in bytes): the binary cache stops no task."""
    for name, component in COMPONENTS.items():
        directory = cache.component_dir(root, name, str(data[component.version_key]),
                                        cache.host_arch())
        directory.mkdir(parents=True)
        for file in component.files:
            (directory / file).write_bytes(f"stand-in {name}/{file}".encode())
        cache.write_manifest(directory, component.files)


def test_a_real_run_still_needs_the_pki(tmp_path: Path, empty_cache: Path, run_tasks) -> None:
    ctx = _ctx(tmp_path / "state")
    _fake_complete_cache(empty_cache, ctx.data)
    recording = run_tasks(ctx)
    # The cache is complete: what stops the run is the PKI it has not made, and only that.
    refused = recording.refused
    assert list(refused) == [("control plane", "m1", "tasks.controlplane.deploy")], refused
    assert f"{ctx.state / 'pki' / 'encryption.json'}: missing" in next(iter(refused.values()))


class _Runner:
    """Stands in for the runner only where the workflow closes its report."""

    ctx = None  # (what the workflow hands to the steps stubbed out)

    def finish(self, *_args: object) -> None:
        return None


@pytest.mark.parametrize("command", ["up", "add-node"])
def test_dry_is_passed_through(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubesmith import cli
    from kubesmith.workflows import add_node, up

    seen: list[bool] = []
    monkeypatch.setattr(up, "run", lambda _r, dry, *_a: seen.append(dry))
    monkeypatch.setattr(up, "converge", lambda _r, dry, *_a: seen.append(dry))
    monkeypatch.setattr(add_node.steps, "converge_addons", lambda _r, dry: seen.append(dry))
    monkeypatch.setattr(add_node.steps, "named", lambda *_a: ())
    monkeypatch.setattr(add_node.steps, "require_cluster", lambda *_a: None)
    args = cli.parser().parse_args([command, *(["n1"] if command == "add-node" else []),
                                    "--dry"])
    args.workflow(_Runner(), args)
    assert seen == ([True, True] if command == "add-node" else [True])


def test_a_damaged_key_ring_is_refused_by_dry_as_by_a_real_run(tmp_path: Path,
                                                                empty_cache: Path) -> None:
    from kubesmith import encryption

    state = tmp_path / "state"
    (state / "pki").mkdir(parents=True)
    (state / "pki" / "encryption.json").write_text("{not json")
    with pytest.raises(encryption.RingError, match="encryption.json"):
        steps.prepare_local(_ctx(state), lambda _line: None, dry=True)
