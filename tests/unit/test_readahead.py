"""The read-ahead: a host's reads of the last run in one command, answered while nothing changed."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path

import pytest
from pyinfra.connectors.util import CommandOutput, OutputLine

from kubesmith import readahead
from kubesmith.readahead import ReadAhead

FACT_ARGUMENTS = {"print_output": False, "print_input": False, "_sudo": False, "_su_user": None,
                  "_shell_executable": "sh", "_success_exit_codes": [0], "_timeout": None,
                  "_env": {}, "_retry_delay": 5}


class Host:
    """A host's connector run by a local sh: every command it ran, in order."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, command: object, **_kwargs: object) -> tuple[bool, CommandOutput]:
        self.ran.append(str(command))
        done = subprocess.run(["sh", "-c", str(command)], capture_output=True, text=True,
                              check=False)
        lines = [OutputLine("stdout", line) for line in done.stdout.splitlines()]
        lines += [OutputLine("stderr", line) for line in done.stderr.splitlines()]
        return done.returncode == 0, CommandOutput(lines)


def test_batch_answers_each_command_that_succeeded_with_its_own_output(monkeypatch) -> None:
    monkeypatch.setattr(readahead, "TIMEOUT", 1)
    commands = ["echo a; echo b >&2", "echo x; exit 3", "printf 'no newline'", "echo; echo c",
                "sleep 5; echo late"]
    _ok, output = Host().run(readahead.batch_command(commands, "T0K"))
    found = readahead.parse(output.stdout_lines, "T0K")
    assert sorted(found) == [0, 2, 3]
    assert [(line.buffer_name, line.line) for line in found[0]] == [("stdout", "a"),
                                                                    ("stderr", "b")]
    assert found[2].stdout_lines == ["no newline"]
    assert found[3].stdout_lines == ["", "c"]


def test_the_batch_reads_the_hosts_clock_and_the_offset_takes_out_its_run() -> None:
    _ok, output = Host().run(readahead.batch_command(["sleep 0.6; echo a"], "T0K"))
    lines = output.stdout_lines
    assert readahead.parse(lines, "T0K")[0].stdout_lines == ["a"]  # readings are no output
    start, end = (float(line.split()[1]) for line in lines if line.startswith("T0K-t "))
    assert end - start >= 0.6
    # Sent 1.4 s before the first reading and answered 0.2 s after the last: 1.6 s of round
    # trip outside the run, too wide to place the reading.
    assert readahead.clock_offset(lines, "T0K", start - 1.4, end + 0.2) is None
    # Sent 0.4 s before the first reading, answered 0.2 s before the last (by the host's clock):
    # the reading was taken in [start - 0.4, start - 0.2] of the control machine's clock, whose
    # midpoint puts the host 0.3 s ahead.
    offset = readahead.clock_offset(lines, "T0K", start - 0.4, end - 0.2)
    assert offset is not None and abs(offset - 0.3) < 1e-3
    assert readahead.clock_offset(lines[1:], "T0K", start, end) is None  # one reading missing


def test_a_host_s_clock_offset_is_kept_from_its_batch(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "up.json"
    path.write_text(json.dumps({"h1": ["echo one"]}))
    monkeypatch.setattr(readahead, "CLOCK_SLACK", 2.0)  # a busy test machine starts sh slowly
    ahead = ReadAhead(path)
    ahead.fetch("h1", Host().run)
    assert abs(ahead.clocks["h1"]) < 2.0  # this machine's own clock
    monkeypatch.setattr(readahead, "CLOCK_SLACK", 0.05)
    slow = Host()

    def late(command: object, **kwargs: object) -> tuple[bool, CommandOutput]:
        answer = slow.run(command, **kwargs)
        time.sleep(0.1)  # an answer this late places no reading
        return answer
    path.write_text(json.dumps({"h2": ["echo one"]}))
    ahead = ReadAhead(path)
    ahead.fetch("h2", late)
    assert "h2" not in ahead.clocks and ahead.answers["h2"]


def test_reads_are_answered_from_one_command_until_something_changes(tmp_path: Path) -> None:
    path = tmp_path / "up.json"
    path.write_text(json.dumps({"h1": ["echo one", "echo two"]}))
    ahead, host = ReadAhead(path), Host()
    ahead.fetch("h1", host.run)
    run = ahead.wrap("h1", host.run, {})
    assert len(host.ran) == 1
    with ahead.reads("h1"):
        assert run("echo one", **FACT_ARGUMENTS)[1].stdout_lines == ["one"]
        assert run("echo three", **FACT_ARGUMENTS)[1].stdout_lines == ["three"]  # not planned
    assert host.ran[1:] == ["echo three"]
    run("true")  # not a read: a change
    with ahead.reads("h1"):
        assert run("echo two", **FACT_ARGUMENTS)[1].stdout_lines == ["two"]
    assert host.ran[1:] == ["echo three", "true", "echo two"]
    assert ahead.summary() == "reads: 1 answered ahead, 2 asked live"
    ahead.fetch("h1", host.run)  # nothing is read ahead once something changed
    assert len(host.ran) == 4


def test_a_read_asked_again_in_one_block_is_asked_live(tmp_path: Path) -> None:
    # A readiness check polls: its second reading must be the host's state then, not the batch's
    # (a balancer's backend DOWN when the batch ran, UP since).
    path = tmp_path / "up.json"
    state = tmp_path / "backend"
    state.write_text("DOWN\n")
    path.write_text(json.dumps({"h1": [f"cat {state}"]}))
    ahead, host = ReadAhead(path), Host()
    ahead.fetch("h1", host.run)
    state.write_text("UP\n")
    run = ahead.wrap("h1", host.run, {})
    with ahead.reads("h1"):
        assert run(f"cat {state}", **FACT_ARGUMENTS)[1].stdout_lines == ["DOWN"]  # the batch's
        assert run(f"cat {state}", **FACT_ARGUMENTS)[1].stdout_lines == ["UP"]
    with ahead.reads("h1"):  # a block of its own (another phase's facts): the batch answers
        assert run(f"cat {state}", **FACT_ARGUMENTS)[1].stdout_lines == ["DOWN"]
    assert host.ran[1:] == [f"cat {state}"] and ahead.fresh
    assert ahead.summary() == "reads: 2 answered ahead, 1 asked live"


def test_a_host_logged_in_with_sudo_has_its_reads_answered_ahead(tmp_path: Path) -> None:
    """The batch runs with the host's escalation, so reads asked with it are answered; one
    asked as the login user is not."""
    path = tmp_path / "up.json"
    path.write_text(json.dumps({"h1": ["echo one", "echo two"]}))
    ahead, host = ReadAhead(path), Host()
    ahead.fetch("h1", host.run)
    run = ahead.wrap("h1", host.run, {"_sudo": True, "_su_user": None})
    with ahead.reads("h1"):
        assert run("echo one", **{**FACT_ARGUMENTS, "_sudo": True})[1].stdout_lines == ["one"]
        run("echo two", **FACT_ARGUMENTS)  # "_sudo": False
    assert host.ran[1:] == ["echo two"]
    assert ahead.summary() == "reads: 1 answered ahead, 1 asked live"


def test_a_read_the_batch_cannot_make_as_asked_is_asked_live_and_changes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "up.json"
    path.write_text(json.dumps({"h1": ["echo one", "date +%s.%N"]}))
    ahead, host = ReadAhead(path), Host()
    ahead.fetch("h1", host.run)
    run = ahead.wrap("h1", host.run, {})
    with ahead.reads("h1"):
        run("date +%s.%N", **{**FACT_ARGUMENTS, **readahead.LIVE})  # a clock: read when asked
        run("echo one", **{**FACT_ARGUMENTS, "_sudo": True})
        assert run("echo one", **FACT_ARGUMENTS)[1].stdout_lines == ["one"]
    assert host.ran[1:] == ["date +%s.%N", "echo one"] and ahead.fresh
    assert ahead.read == {"h1": {"echo one": None}}
    assert ahead.summary() == "reads: 1 answered ahead, 2 asked live"


def test_this_runs_reads_are_saved_private_for_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "state" / "readahead" / "up.json"
    ahead, host = ReadAhead(path), Host()
    with ahead.reads("h1"):
        ahead.wrap("h1", host.run, {})("echo one", **FACT_ARGUMENTS)
    ahead.save()
    assert not path.parent.parent.exists()  # no state directory: nothing written, none made
    path.parent.parent.mkdir()
    run = ahead.wrap("h1", host.run, {})
    with ahead.reads("h1"):
        run("echo one", **FACT_ARGUMENTS)
        run("echo one", **FACT_ARGUMENTS)
    run("true")  # a change is not recorded
    ahead.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ReadAhead(path).planned == {"h1": ["echo one"]}


def test_a_read_the_next_run_will_make_is_recorded_for_its_batch(tmp_path: Path) -> None:
    """A bootstrap starts etcd without reading its peer certificate; the next run rolls etcd
    and reads it: recorded now, it is answered from that run's batch, not asked live."""
    path = tmp_path / "state" / "readahead" / "up.json"
    path.parent.parent.mkdir(parents=True)
    first = ReadAhead(path)
    first.expect("m1", "echo certificate")
    first.save()
    second, host = ReadAhead(path), Host()
    assert second.planned == {"m1": ["echo certificate"]}
    second.fetch("m1", host.run)
    with second.reads("m1"):
        ok, output = second.wrap("m1", host.run, {})("echo certificate", **FACT_ARGUMENTS)
    assert ok and output.stdout_lines == ["certificate"]
    assert len(host.ran) == 1 and (second.answered, second.live) == (1, 0)


@pytest.mark.parametrize("recorded", ["[]", '{"h1": "uname -a"}', '{"h1": [1, 2]}'])
def test_a_damaged_record_asks_every_read_live(tmp_path: Path, recorded: str) -> None:
    path = tmp_path / "up.json"
    path.write_text(recorded)
    ahead, host = ReadAhead(path), Host()
    ahead.fetch("h1", host.run)
    assert ahead.planned == {} and host.ran == []
