"""A workflow's read-only remote commands (facts, readiness checks) from its last run, run
together on each host when it connects and answered from there until the run changes anything:
a no-op re-run reads each host's state in one command."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pyinfra.connectors.util import CommandOutput, OutputLine

# Seconds one command may take in the batch; a slower one is asked again, live.
TIMEOUT = 5
# pyinfra passes a fact every connector argument, most unset: these must have the values the
# batch runs with, any other must be unset; the ignored ones do not change what runs.
_AS_BATCH: dict[str, object] = {"_shell_executable": "sh", "_success_exit_codes": [0]}
_IGNORED = {"print_output", "print_input", "_retry_delay"}
# A read given these connector arguments is asked when asked, never ahead (nor recorded): what
# must be read at that moment, such as a host's clock.
LIVE: dict[str, object] = {"_timeout": 10}
# Seconds of a batch's round trip outside the host's run beyond which its clock reading is not
# used (the host's clock is then read live).
CLOCK_SLACK = 0.5

Run = Callable[..., tuple[bool, CommandOutput]]


# The batch's output: per command `token index status`, its stdout lines, `token-e`, its stderr
# lines (each file's last line ended, as printed).
_OUTPUTS_AWK = (
    "function out(f,  l) { while ((getline l < f) > 0) print l; close(f) } "
    'BEGIN { for (i = 0; i < n; i++) { s = ""; f = d "/" i; getline s < (f ".s"); '
    'close(f ".s"); print t, i, s; out(f); print t "-e"; out(f ".e") } }'
)


def batch_command(commands: Sequence[str], token: str) -> str:
    """One shell command running these commands at once, each in its own sh, for at most TIMEOUT
    seconds; then per command a line `token index status`, its stdout lines, `token-e`, its
    stderr. The host's clock is read as it starts and as it ends (`token-t seconds`: see
    clock_offset)."""
    clock = f'echo "{token}-t $(date +%s.%N)"'
    launches = [f"( sh -c {shlex.quote(c)} </dev/null >$d/{i} 2>$d/{i}.e; echo $? > $d/{i}.s ) &"
                for i, c in enumerate(commands)]
    # One timeout for them all (not one process per command): when it expires it stops its whole
    # process group, so a command still running then leaves no status and is asked again, live.
    script = "\n".join([*launches, "wait"])
    lines = [clock, "d=$(mktemp -d) || exit 1",
             f'd="$d" timeout {TIMEOUT} sh -c {shlex.quote(script)}']
    # One awk prints every command's status, stdout and stderr (a process per file cost more
    # CPU than the reads themselves on a host running few).
    lines.append(f'awk -v t={token} -v n={len(commands)} -v d="$d" {shlex.quote(_OUTPUTS_AWK)}; '
                 'rm -rf "$d"')
    lines.append(clock)
    return "\n".join(lines)


def clock_offset(lines: Sequence[str], token: str, sent: float, received: float) -> float | None:
    """The host's clock minus the control machine's, from a batch sent and answered at these
    times: its first reading was taken between the sending and the answer less the batch's run
    (its two readings apart), the midpoint is taken as for a live read. None when the round trip
    outside the run exceeds CLOCK_SLACK (or a reading is missing)."""
    readings = [float(line.split(" ")[1]) for line in lines if line.startswith(f"{token}-t ")]
    if len(readings) != 2:
        return None
    start, end = readings
    latest = received - (end - start)
    if latest - sent > CLOCK_SLACK:
        return None
    return start - (sent + latest) / 2


def parse(lines: Sequence[str], token: str) -> dict[int, CommandOutput]:
    """The output of each command of a batch that exited 0, by index."""
    found: dict[int, CommandOutput] = {}
    index, status, stream = -1, "", "stdout"
    for line in lines:
        head = line.split(" ")
        if head[0] == f"{token}-t":  # a clock reading
            continue
        if head[0] == token and len(head) == 3:
            index, status, stream = int(head[1]), head[2], "stdout"
            if status == "0":
                found[index] = CommandOutput([])
        elif line == f"{token}-e":
            stream = "stderr"
        elif status == "0" and index in found:
            found[index].combined_lines.append(OutputLine(stream, line))
    return found


def _plain(kwargs: dict[str, object], host: dict[str, object]) -> bool:
    """Whether a command's connector arguments are those the batch runs it with (defaults, and
    the host's own privilege escalation, which the batch runs with too)."""
    return all(k in _IGNORED or (v == host[k] if k in host else
                                  v == _AS_BATCH[k] if k in _AS_BATCH else not v)
               for k, v in kwargs.items())


class ReadAhead:
    """The reads of one workflow's run: answered from the batch each host ran at connection
    while nothing has changed (no operation, no command other than a read), each once per block
    of reads (a readiness check asking again wants a new reading), recorded for the next run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            planned = json.loads(path.read_text())
        except (OSError, ValueError):
            planned = {}
        valid = isinstance(planned, dict) and all(
            isinstance(c, list) and all(isinstance(x, str) for x in c) for c in planned.values())
        # A damaged record: this run asks every read live, and records them anew.
        self.planned: dict[str, list[str]] = planned if valid else {}
        self.answers: dict[str, dict[str, CommandOutput]] = {}
        self.read: dict[str, dict[str, None]] = {}
        self.reading: set[str] = set()
        # Commands answered from the batch in each host's current reads block: one asked again
        # there is a readiness check polling for a new reading, so it is asked live.
        self.given: dict[str, set[str]] = {}
        self.fresh = True
        self.answered = self.live = 0  # reads answered from a batch, and asked live
        self.clocks: dict[str, float] = {}  # host's clock minus the control machine's, by batch

    @contextlib.contextmanager
    def reads(self, host: str) -> Iterator[None]:
        """The host's commands in this block only read (facts, readiness checks)."""
        self.reading.add(host)
        self.given[host] = set()
        try:
            yield
        finally:
            self.reading.discard(host)

    def changed(self) -> None:
        """Something changed: every later read is asked live."""
        self.fresh = False
        self.answers.clear()

    def fetch(self, host: str, run: Run) -> None:
        """Run the host's reads of the last run in one command (once per run, while fresh)."""
        commands = self.planned.get(host)
        if not commands or not self.fresh or host in self.answers:
            return
        token = f"kubesmith-readahead-{secrets.token_hex(8)}"
        sent = time.time()
        ok, output = run(batch_command(commands, token))
        offset = clock_offset(output.stdout_lines, token, sent, time.time()) if ok else None
        if offset is not None:
            self.clocks[host] = offset
        found = parse(output.stdout_lines, token) if ok else {}
        self.answers[host] = {commands[i]: out for i, out in found.items()}

    def wrap(self, host: str, run: Run, escalation: dict[str, object]) -> Run:
        """The host's connector command, answered from its batch when it is a read and the
        batch ran it with success (and the arguments the batch runs with: the host's
        escalation); any command but a read is a change."""
        def answered(command: object, *args: object, **kwargs: object) -> tuple[bool,
                                                                             CommandOutput]:
            get_raw = getattr(command, "get_raw_value", None)
            text = get_raw() if callable(get_raw) else str(command)
            if host not in self.reading:
                self.changed()
                return run(command, *args, **kwargs)
            if args or not _plain(kwargs, escalation):  # a read the batch cannot make as asked
                self.live += 1
                return run(command, *args, **kwargs)
            self.read.setdefault(host, {})[text] = None
            found = self.answers.get(host, {}).get(text)
            given = self.given.setdefault(host, set())
            if found is not None and text not in given:
                given.add(text)
                self.answered += 1
                return True, found
            self.live += 1
            return run(command, *args, **kwargs)
        return answered

    def expect(self, host: str, command: str) -> None:
        """Record a read this run did not make for the next run to make ahead (one the next
        run is known to ask: see steps.expect_etcd_roll)."""
        self.read.setdefault(host, {})[command] = None

    def summary(self) -> str:
        """How this run's reads were answered."""
        return f"reads: {self.answered} answered ahead, {self.live} asked live"

    def save(self) -> None:
        """Record this run's reads per host (0600) for the next run of the workflow."""
        state = self.path.parent.parent  # made by the workflow (claimed), never here
        if not self.read or not state.is_dir():
            return
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({h: list(c) for h, c in self.read.items()}, f)
        temp.replace(self.path)
