"""Lab stop/start without booting hosts: names, no-ops, mount matching, `up`'s host plan, CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
from pathlib import Path

import pytest

from kubesmith import cli
from kubesmith.lab import hosts as lab
from kubesmith.lab.state import LabHost, LabPaths, LabState, load, save


def _recorded(tmp_path: Path, pid: int = 0) -> LabPaths:
    paths = LabPaths(tmp_path)
    hosts = [LabHost("lab-1", "10.240.0.11", pid=pid), LabHost("lab-2", "10.240.0.12")]
    save(paths, LabState(gateway="10.240.0.1", hosts=hosts))
    return paths


@pytest.mark.parametrize("action", [lab.stop, lab.start])
def test_unknown_host_lists_the_known(tmp_path: Path, action) -> None:
    with pytest.raises(lab.LabError, match=r"no lab host named 'lab-9'; known: lab-1, lab-2$"):
        action("lab-9", paths=_recorded(tmp_path))


@pytest.mark.parametrize("action", [lab.stop, lab.start])
def test_no_lab_recorded(tmp_path: Path, action) -> None:
    with pytest.raises(lab.LabError, match="no lab recorded .*lab up"):
        action("lab-1", paths=LabPaths(tmp_path))


def test_stopping_a_stopped_host_says_so_and_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab, "preflight", lambda: None)
    paths = _recorded(tmp_path)
    said: list[str] = []
    lab.stop("lab-2", kill=True, paths=paths, log=said.append)
    assert said == ["lab: lab-2 is already stopped"]
    state = load(paths)
    assert state is not None and state.host("lab-2") == LabHost("lab-2", "10.240.0.12")


def test_starting_a_running_host_is_a_no_op(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab, "preflight", lambda: None)
    monkeypatch.setattr(lab, "_host_running", lambda host: host.name == "lab-1")
    said: list[str] = []
    host = lab.start("lab-1", paths=_recorded(tmp_path, pid=4242), log=said.append)
    assert host.pid == 4242
    assert said == ["lab: lab-1 is already running (pid 4242)"]


def test_a_reused_or_foreign_pid_is_not_the_host() -> None:
    """Our own pid runs, but it is not that host's systemd-nspawn."""
    assert lab._pid_alive(os.getpid())
    assert not lab._host_running(LabHost("lab-1", "10.240.0.11", pid=os.getpid(), merged="/x"))
    assert not lab._host_running(LabHost("lab-1", "10.240.0.11", pid=0))


def test_exited_child_counts_as_gone() -> None:
    child = subprocess.Popen(["true"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # a zombie now, not reaped
    assert not lab._pid_alive(child.pid)


def test_mounts_under_matches_whole_path_components_deepest_first() -> None:
    mounts = ["/lab/hosts/lab-1/merged", "/lab/hosts/lab-10/merged", "/lab/hosts/lab-1",
              "/lab/hosts/lab-1/merged/proc", "/other"]
    assert lab.mounts_under(Path("/lab/hosts/lab-1"), mounts) == [
        "/lab/hosts/lab-1/merged/proc", "/lab/hosts/lab-1/merged", "/lab/hosts/lab-1"]
    assert lab.mounts_under(Path("/lab/hosts/lab-1/merged"), mounts) == [
        "/lab/hosts/lab-1/merged/proc", "/lab/hosts/lab-1/merged"]


def test_up_plans_new_hosts_after_the_recorded_ones() -> None:
    state = LabState(subnet="10.243.0.0/24", hosts=[LabHost("lab-1", "10.243.0.11", pid=7)])
    lab._add_hosts(state, 3)
    assert [(h.name, h.address, h.pid) for h in state.hosts] == [
        ("lab-1", "10.243.0.11", 7), ("lab-2", "10.243.0.12", 0), ("lab-3", "10.243.0.13", 0)]
    assert lab._hosts_file(state).splitlines() == [
        "127.0.0.1 localhost", "10.243.0.11 lab-1", "10.243.0.12 lab-2", "10.243.0.13 lab-3"]


def test_configure_refuses_a_subnet_change_and_too_many_hosts() -> None:
    recorded = LabState(subnet="10.243.0.0/24", hosts=[LabHost("lab-1", "10.243.0.11")])
    with pytest.raises(lab.LabError, match="a lab on 10.243.0.0/24 exists"):
        lab._configure(recorded, 1, "10.244.0.0/24", None)
    with pytest.raises(lab.LabError, match="245 hosts do not fit in 10.243.0.0/24"):
        lab._configure(recorded, 245, None, None)


def test_cli_parses_stop_and_start() -> None:
    args = cli.parser().parse_args(["lab", "stop", "lab-2", "--kill"])
    assert (args.action, args.name, args.kill) == ("stop", "lab-2", True)
    args = cli.parser().parse_args(["lab", "start", "lab-2"])
    assert (args.action, args.name, args.kill) == ("start", "lab-2", False)


@pytest.mark.parametrize("action", ["stop", "start"])
def test_cli_needs_a_host_name(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lab", action]) == 1
    assert f"lab {action} needs a host name, e.g. lab {action} lab-2" in capsys.readouterr().err


def test_shared_kernel_limits_are_raised_never_lowered(tmp_path, monkeypatch) -> None:
    low, high = tmp_path / "low", tmp_path / "high"
    low.write_text("128\n")
    high.write_text("9999\n")
    monkeypatch.setattr(lab, "SHARED_LIMITS", {str(low): 1024, str(high): 1024})
    monkeypatch.setattr(lab, "RAISED_RECORD", tmp_path / "raised.json")
    said: list[str] = []
    lab.raise_shared_limits(said.append)
    assert low.read_text() == "1024\n" and high.read_text() == "9999\n"
    assert said == ["lab: low raised from 128 to 1024 for the lab hosts"]


def test_raised_limits_are_restored_when_no_lab_host_runs_any_more(tmp_path, monkeypatch) -> None:
    low, other = tmp_path / "max_user_instances", tmp_path / "max_user_watches"
    low.write_text("128\n")
    other.write_text("8192\n")
    monkeypatch.setattr(lab, "SHARED_LIMITS", {str(low): 1024, str(other): 524288})
    record = tmp_path / "raised.json"
    said: list[str] = []
    lab.raise_shared_limits(said.append, record)
    lab.raise_shared_limits(said.append, record)  # a second lab: the machine's values are kept
    # Another lab's hosts still run: they keep what they need.
    lab.restore_shared_limits(said.append, record, hosts_running=lambda: True)
    assert low.read_text() == "1024\n" and record.exists()
    other.write_text("999999\n")  # changed by someone else meanwhile: left as it is
    lab.restore_shared_limits(said.append, record, hosts_running=lambda: False)
    assert low.read_text() == "128\n" and other.read_text() == "999999\n"
    assert not record.exists()
    assert said[-2:] == ["lab: shared kernel limits stay raised: other lab hosts still run on "
                         "this machine", "lab: max_user_instances restored to 128"]
    lab.restore_shared_limits(said.append, record, hosts_running=lambda: False)  # nothing left
    assert len(said) == 4


def _raise_repeatedly(record: str, low: str, times: int) -> None:
    """One lab process raising the limits again and again (each call rewrites the record)."""
    lab.SHARED_LIMITS = {low: 1024}
    for _ in range(times):
        lab.raise_shared_limits(lambda _line: None, Path(record))
        json.loads(Path(record).read_text())  # raises if a write was seen half done


def test_labs_raising_at_once_keep_the_record_whole(tmp_path) -> None:
    """The test suite's workers boot labs at the same time: every read of the record parses,
    and it keeps the machine's own value (two unlocked writes once interleaved into
    '{"...instances": 128} "...watches": 192530}', and every later lab failed to boot)."""
    low, record = tmp_path / "max_user_instances", tmp_path / "raised.json"
    low.write_text("128\n")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_raise_repeatedly, args=(str(record), str(low), 200))
               for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * 6
    assert json.loads(record.read_text()) == {str(low): 128}


def test_an_unreadable_record_is_said_and_ignored(tmp_path, monkeypatch) -> None:
    low, record = tmp_path / "max_user_instances", tmp_path / "raised.json"
    low.write_text("1024\n")
    monkeypatch.setattr(lab, "SHARED_LIMITS", {str(low): 1024})
    record.write_text('{"a": 128} "b": 1}')
    said: list[str] = []
    lab.raise_shared_limits(said.append, record)  # the lab still boots
    lab.restore_shared_limits(said.append, record, hosts_running=lambda: False)
    assert said == [f"lab: {record} is unreadable: ignored (the limits it recorded are not "
                    "restored)"] * 2
    assert low.read_text() == "1024\n" and not record.exists()
