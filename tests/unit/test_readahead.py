"""The read-ahead: a host's reads of the last run in one command, answered while nothing changed."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

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


def test_reads_are_answered_from_one_command_until_something_changes(tmp_path: Path) -> None:
    path = tmp_path / "up.json"
    path.write_text(json.dumps({"h1": ["echo one", "echo two"]}))
    ahead, host = ReadAhead(path), Host()
    ahead.fetch("h1", host.run)
    run = ahead.wrap("h1", host.run)
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


def test_a_read_the_batch_cannot_make_as_asked_is_asked_live_and_changes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "up.json"
    path.write_text(json.dumps({"h1": ["echo one", "date +%s.%N"]}))
    ahead, host = ReadAhead(path), Host()
    ahead.fetch("h1", host.run)
    run = ahead.wrap("h1", host.run)
    with ahead.reads("h1"):
        run("date +%s.%N", **{**FACT_ARGUMENTS, **readahead.LIVE})  # a clock: read when asked
        run("echo one", **{**FACT_ARGUMENTS, "_sudo": True})
        assert run("echo one", **FACT_ARGUMENTS)[1].stdout_lines == ["one"]
    assert host.ran[1:] == ["date +%s.%N", "echo one"] and ahead.fresh
    assert ahead.read == {"h1": {"echo one": None}}


def test_this_runs_reads_are_saved_private_for_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "state" / "readahead" / "up.json"
    ahead, host = ReadAhead(path), Host()
    with ahead.reads("h1"):
        ahead.wrap("h1", host.run)("echo one", **FACT_ARGUMENTS)
    ahead.save()
    assert not path.parent.parent.exists()  # no state directory: nothing written, none made
    path.parent.parent.mkdir()
    run = ahead.wrap("h1", host.run)
    with ahead.reads("h1"):
        run("echo one", **FACT_ARGUMENTS)
        run("echo one", **FACT_ARGUMENTS)
    run("true")  # a change is not recorded
    ahead.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ReadAhead(path).planned == {"h1": ["echo one"]}
