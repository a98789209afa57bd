"""The binary mirror: while a workflow installs artifacts, the first master serves them over
HTTPS (its certificate from the cluster CA); it gets each file once from the control machine
(only files it lacks), so the control machine's upload does not grow with the number of hosts.
Started only when some prepared op fetches, stopped when the workflow ends."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gevent
from pyinfra import host
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.operations import systemd

from kubesmith import certificates, manifest, openssh, paths
from kubesmith.binaries.cache import SHA256
from kubesmith.certificates import MIRROR
from kubesmith.context import DeployContext
from kubesmith.errors import UserError
from kubesmith.inventory import host_data
from kubesmith.model import Cluster, Host
from kubesmith.runner import Phase, Runner, on_each, retry
from kubesmith.services import MIRROR_PORT
from tasks import _ops, artifacts, pki

UNIT = f"{paths.MIRROR_UNIT}.service"


def seed(cluster: Cluster) -> Host:
    """The host that serves the mirror: the first master."""
    return cluster.masters[0]


def cacert(ctx: DeployContext) -> str:
    """The CA certificate every host checks the mirror's certificate with."""
    return f"{ctx.data['pki_dir']}/kubernetes-ca.crt"


def url(ctx: DeployContext, sha256: str) -> str:
    """Where a host fetches the artifact with this sum."""
    return f"https://{seed(ctx.cluster).address}:{MIRROR_PORT}/{sha256}"


def values(ctx: DeployContext) -> dict[str, object]:
    """The values of the mirror's templates (its server script and unit)."""
    pki = str(ctx.data["pki_dir"])
    return {"directory": paths.MIRROR_DIR, "address": seed(ctx.cluster).address,
            "port": MIRROR_PORT, "cert": f"{pki}/{MIRROR}.crt", "key": f"{pki}/{MIRROR}.key",
            "script": paths.MIRROR_SCRIPT}


def _fill(files: dict[str, str]) -> Callable[[DeployContext], None]:
    """The task on the seed: these artifacts (sha256 -> local cache file) in the mirror
    directory, the server's certificate (also the hosts phase's: here for workflows that run
    that phase on other hosts only), script and unit, the server running."""
    def fill(ctx: DeployContext) -> None:
        credential = next(c for c in certificates.of_host(ctx.cluster, seed(ctx.cluster))
                          if c.name == MIRROR)
        unit = _ops.template("kubesmith-mirror unit", "mirror/kubesmith-mirror.service.j2",
                             paths.unit(paths.MIRROR_UNIT), **values(ctx))
        server = [_ops.template("kubesmith-mirror server", "mirror/serve.py.j2",
                                paths.MIRROR_SCRIPT, **values(ctx)),
                  *pki.credential_items(ctx, credential), unit]
        synced = _ops.sync([
            _ops.directory(paths.MIRROR_DIR),
            *(_ops.local(f"mirror {src.rsplit('/', 1)[-1]}", src, f"{paths.MIRROR_DIR}/{sha}",
                         "644", sha) for sha, src in files.items()),
            *server,
        ])
        if synced.changed(unit):
            systemd.daemon_reload(name="reload systemd units")
        state = host.get_fact(_ops.UnitStates, units=[UNIT]).get(UNIT)
        running = state is not None and state.active == "active"
        if not running or synced.changed(*server):  # (left running by a killed run)
            systemd.service(name="start the binary mirror", service=UNIT, running=True,
                            restarted=running)
    return fill


def _stop(ctx: DeployContext) -> None:
    """The task on the seed: the server stopped (the files stay for the next workflow)."""
    systemd.service(name="stop the binary mirror", service=UNIT, running=False)


def _serving(ctx: DeployContext, remote: PyinfraHost) -> None:
    """The mirror answers over TLS, its certificate checked with the cluster CA."""
    retry(remote, f"curl -fsS -o /dev/null --cacert {shlex.quote(cacert(ctx))} "
                  f"{shlex.quote(url(ctx, ''))}", "binary mirror serving", 30)


class Push:
    """The mirror's artifacts sent to the seed in the background, one OpenSSH session per file
    over one multiplexed connection: a process of its own (its encryption on another core),
    so the transfer overlaps the phases before those that fetch, and the fill finds the files
    in place. Where OpenSSH cannot log in (a password, say) it stops, and the fill uploads
    what is missing itself, as before."""

    def __init__(self, ctx: DeployContext, files: dict[str, str]) -> None:
        self.host = seed(ctx.cluster)
        self.files = files  # sha256 -> local cache file, in the order they are sent
        self.done: set[str] = set()
        self.failed = ""
        self.reported = False  # the failure was told once
        self.finished = False
        self._process: subprocess.Popen | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="ks-push-")
        self._ssh = ["ssh", "-F", f"{self._dir.name}/config", "-o", "ControlMaster=auto", "-o",
                     f"ControlPath={self._dir.name}/master", "-o", "ControlPersist=yes",
                     *openssh.bulk_options(_cpuinfo())]
        data = host_data(ctx.groups)[self.host.name]
        self._sudo = bool(data.get("_sudo"))  # a login user that becomes root with sudo
        try:
            if data.get("ssh_password"):
                raise UserError("the seed logs in with a password, OpenSSH here with keys only")
            Path(self._ssh[2]).write_text(openssh.config({self.host.name: data}, 10))
        except UserError as error:  # (a value OpenSSH's config refuses)
            self.failed, self.finished = str(error), True
            return
        self._greenlet = gevent.spawn(self._run)

    def _remote(self, command: str, stdin: str | None = None) -> str:
        """Run a command on the seed (stdin from a local file); its output, or raise."""
        if self._sudo:
            command = f"sudo -n sh -c {shlex.quote(command)}"
        with open(stdin or os.devnull, "rb") as source:
            self._process = subprocess.Popen(
                [*self._ssh, self.host.name, command], stdin=source, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            out, err = self._process.communicate()
        if self._process.returncode != 0:
            raise UserError(err.decode(errors="replace").strip()[-300:]
                            or f"exit {self._process.returncode}")
        return out.decode()

    def _run(self) -> None:
        try:
            have = set(self._remote(list_command()).split())
            self.done.update(sha for sha in self.files if sha in have)
            for sha, src in self.files.items():
                if sha not in self.done:
                    self._remote(put_command(sha, os.path.getsize(src)), stdin=src)
                    self.done.add(sha)
        except (UserError, OSError) as error:
            self.failed = str(error)
        finally:
            self.finished = True

    def wait(self, shas: set[str]) -> None:
        """Until these files are on the seed, or the push stopped."""
        while not (shas <= self.done or self.finished):
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop sending (a failed workflow), close the connection, remove the local config."""
        if self._greenlet is not None:
            self._greenlet.kill()
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run([*self._ssh, "-O", "exit", self.host.name], capture_output=True,
                               timeout=10, check=False)
        self._dir.cleanup()


def _cpuinfo() -> str:
    """This machine's /proc/cpuinfo (empty where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def list_command() -> str:
    """The mirror directory made (recorded in the host's manifest first), its files listed."""
    entry = manifest.line("dir", paths.MIRROR_DIR)
    return (f"grep -qxF {shlex.quote(entry)} {manifest.PATH} 2>/dev/null || "
            f"{{ {manifest.append_command([entry])}; }} && mkdir -p {paths.MIRROR_DIR} && "
            f"ls {paths.MIRROR_DIR}")


def put_command(sha256: str, size: int, directory: str = paths.MIRROR_DIR,
                sums: str = paths.SUMS) -> str:
    """Standard input into the mirror as the file named by its sum: written to a 0600
    temporary file, its size checked (a cut connection leaves a short file), moved into place
    and its sum recorded (the fill's fact reads it back)."""
    if not SHA256.fullmatch(sha256):
        raise UserError(f"binary mirror: {sha256!r} is not a sha256")
    dest = f"{directory}/{sha256}"
    temp = shlex.quote(f"{dest}.kubesmith-upload")
    return (f"umask 077 && cat > {temp} && [ \"$(stat -c %s {temp})\" = {int(size)} ] && "
            f"chmod 644 {temp} && mv -f {temp} {shlex.quote(dest)} && "
            f"{_ops.record_sum(dest, sha256, sums)} || {{ rm -f {temp}; exit 1; }}")


def serve(runner: Runner) -> None:
    """Before a phase's ops run: the artifacts they fetch are in the mirror, which runs. The
    first time, every artifact of the cluster starts on its way to the seed (Push): these
    first, then the others while the phases run."""
    wanted = {sha: src for sha, src in _ops.FETCHES.items() if sha not in runner.mirrored}
    _ops.FETCHES.clear()
    if not wanted:
        return
    if runner.push is None:
        if runner.ahead is not None:
            runner.ahead.changed()  # the push writes on the seed, outside pyinfra
        runner.push = Push(runner.ctx, {**wanted, **artifacts.every(runner.ctx)})
    push = runner.push
    push.wait(set(wanted))
    if runner.mirrored and not push.failed and set(wanted) <= push.done:
        # An earlier fill of this workflow started the server, and the push put these files
        # in place (size checked, sum recorded, inside the mirror directory the manifest
        # lists): a fill would find nothing to do.
        runner.mirrored.update(wanted)
        return
    if push.failed and not push.reported:
        push.reported = True
        runner.out(f"[binary mirror] no background upload ({push.failed}): the fill uploads "
                   "what is missing")
    phase = Phase("binary mirror", lambda c: (seed(c),), (_fill(wanted),), (UNIT,),
                  on_each(_serving))
    runner.run(phase, phase.hosts(runner.ctx.cluster))
    runner.mirrored.update(wanted)


def stop(runner: Runner) -> None:
    """When the workflow ends: stop the background upload, and the mirror if this workflow
    started it."""
    if runner.push is not None:
        runner.push.stop()
        runner.push = None
    if runner.mirrored:
        runner.mirrored.clear()
        phase = Phase("binary mirror stop", lambda c: (seed(c),), (_stop,))
        runner.run(phase, phase.hosts(runner.ctx.cluster))
