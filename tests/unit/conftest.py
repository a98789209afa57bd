"""Unit fixtures: run every task of every phase against fake hosts, recording the operations and
every shell command (fact probes included) they would send, without pyinfra or SSH."""

from __future__ import annotations

import importlib
import io
import pkgutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from pyinfra.context import ctx_host

import tasks
from kubesmith.context import DeployContext
from kubesmith.errors import UserError
from kubesmith.lab import hosts as lab_hosts
from tasks import _ops, addons, controlplane, reset
from tasks.phases import ETCD_JOIN, PHASES, RESET

# One probe answer that takes every "change needed" branch: no etcd user, data dir owned by
# root, kernel modules missing, flannel config absent.
PROBE_ANSWER = "none root:root br_netfilter overlay"
OPERATION_MODULES = ("files", "server", "systemd", "python")
# A host's manifest as the reset task reads it back (one line of every kind).
MANIFEST = "\n".join((
    "dir /var/lib/kubesmith", "dir /etc/kubernetes", "file /usr/local/bin/kubelet",
    "file /usr/local/bin/crictl", "file /usr/local/bin/ctr",
    "file /etc/systemd/system/kubelet.service", "dir /var/lib/containerd", "kept /run/netns",
    "link cni0", "chain KUBE-", "user etcd", "package haproxy", "slice kubepods.slice"))


@pytest.fixture(autouse=True)
def _machine_limits_untouched(tmp_path_factory: pytest.TempPathFactory,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's shared kernel limits (fs.inotify) as files of the test's own: no unit test
    raises this machine's sysctls or records them in /run (on a fresh machine one did)."""
    root = tmp_path_factory.mktemp("limits")
    limits = {}
    for path, wanted in lab_hosts.SHARED_LIMITS.items():
        limits[str(root / Path(path).name)] = wanted
        (root / Path(path).name).write_text(f"{wanted}\n")
    monkeypatch.setattr(lab_hosts, "SHARED_LIMITS", limits)
    monkeypatch.setattr(lab_hosts, "RAISED_RECORD", root / "raised.json")


@dataclass
class Recording:
    """What the tasks of one run did, per (phase, host, task): operations and shell commands."""

    ops: dict[tuple[str, str, str], list[tuple[str, dict]]] = field(default_factory=dict)
    commands: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    refused: dict[tuple[str, str, str], str] = field(default_factory=dict)
    current: tuple[str, str, str] = ("", "", "")

    def op(self, name: str, kwargs: dict) -> object:
        """Record an operation call; its result stands for a pending op."""
        self.ops.setdefault(self.current, []).append((name, kwargs))
        for command in kwargs.get("commands", []):
            self.command(command)
        src = kwargs.get("src")
        if name == "server.script" and isinstance(src, io.StringIO):
            self.command(src.getvalue())
        return object()

    def command(self, text: str) -> None:
        """Record a shell command."""
        self.commands.setdefault(self.current, []).append(text)


class _Module:
    """Stands for a pyinfra operations module: every operation is recorded."""

    def __init__(self, name: str, recording: Recording) -> None:
        self._name, self._recording = name, recording

    def __getattr__(self, op: str) -> Callable[..., object]:
        return lambda **kwargs: self._recording.op(f"{self._name}.{op}", kwargs)


class FakeHost:
    """A connected host as the tasks see it: facts come from their own commands."""

    def __init__(self, name: str, recording: Recording) -> None:
        self.name, self._recording = name, recording

    def get_fact(self, fact: type, **kwargs: object) -> object:
        """Record the fact's command and answer with its default (probes: PROBE_ANSWER)."""
        self._recording.command(fact().command(**kwargs))
        if fact is reset.Manifest:
            return MANIFEST
        return PROBE_ANSWER if fact is _ops.ShellOutput else fact.default()


@pytest.fixture
def run_tasks(monkeypatch: pytest.MonkeyPatch) -> Callable[[DeployContext], Recording]:
    """Run every phase's tasks (and reset's) on each of its hosts; a task refusing its input
    (UnsafeValue, a ValueError such as an address a certificate cannot hold, a missing
    file) is recorded."""
    def run(ctx: DeployContext) -> Recording:
        recording = Recording()
        for module in _task_modules():
            for name in OPERATION_MODULES:
                found = getattr(module, name, None)
                if isinstance(found, _Module) or (isinstance(found, ModuleType)
                                                  and found.__name__.startswith("pyinfra.")):
                    monkeypatch.setattr(module, name, _Module(name, recording))
        monkeypatch.setattr(_ops, "write", lambda **kw: recording.op("write", kw))
        monkeypatch.setattr(_ops, "fetch", lambda **kw: recording.op("fetch", kw))
        # The add-ons phase asks the cluster with the control machine's kubectl: "it differs";
        for asks in (addons, controlplane):  # so does the cluster RBAC's diff
            monkeypatch.setattr(asks, "kubectl", lambda *_a, **_k: subprocess.CompletedProcess(
                [], 1, "", "no cluster here"))
        for phase in (*PHASES, ETCD_JOIN, RESET):
            for me in phase.hosts(ctx.cluster):
                for task in phase.tasks:
                    recording.current = (phase.name, me.name, task.__module__ + "." +
                                         task.__name__)
                    with ctx_host.use(FakeHost(me.name, recording)):
                        try:
                            task(ctx)
                        except (ValueError, OSError, UserError) as error:
                            recording.refused[recording.current] = str(error)
        return recording

    return run


def _task_modules() -> list[ModuleType]:
    """Every module of the tasks package (each may call pyinfra operations)."""
    return [importlib.import_module(f"tasks.{info.name}")
            for info in pkgutil.iter_modules(tasks.__path__)]


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty binary cache (nothing built)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("KUBESMITH_CACHE", str(root))
    yield root
