"""Preflight: read-only checks on every host before anything is changed anywhere."""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import time
from collections.abc import Mapping

from pyinfra import host
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.context import ctx_host, ctx_state

from kubesmith import manifest, paths, readahead, versions
from kubesmith.context import DeployContext
from kubesmith.model import Host
from kubesmith.runner import each
from kubesmith.services import FLANNEL_VXLAN_PORT, SERVICES
from tasks import _ops, artifacts

MIN_FREE_KIB = 2 * 1024 * 1024
SUPPORTED_ARCH = ("x86_64",)
# Nodes install the apiserver balancer from Debian 12 (bookworm) packages (component haproxy).
NODE_OS = ("debian-12",)
# Kernel limits a node's kubelet and containerd need, at least (the kernel's defaults, which they
# run with on one host; a host tuned lower, or sharing them with other hosts, runs out):
# sysctl -> minimum.
NODE_LIMITS = {
    # every kubelet, containerd and systemd takes inotify instances ("inotify_init: too many
    # open files": kubelet exits) and cAdvisor a watch per container cgroup
    "fs.inotify.max_user_instances": 128,
    "fs.inotify.max_user_watches": 8192,
    # processes and threads of every pod
    "kernel.pid_max": 32768,
}
# Shell builtins where they do (test, command -v): a re-run's batch runs this probe on every
# host, and each $(...) is a process. (Not dash's `read` for /proc/sys: an integer sysctl read a
# byte at a time gave "3" of 32768.)
PROBE = (
    "".join(f"echo limit=$(echo {name} $(cat /proc/sys/{name.replace('.', '/')})); "
            for name in NODE_LIMITS) +
    "echo arch=$(uname -m); . /etc/os-release; echo os=$ID-$VERSION_ID; "
    "echo hostname=$(hostname); echo swap=$(awk 'NR>1' /proc/swaps | wc -l); "
    "echo free_kib=$(df -Pk / | awk 'NR==2{print $4}'); "
    # bridge netfilter in effect, or a module the hosts phase can load
    "v=; { test -e /proc/sys/net/bridge/bridge-nf-call-iptables"
    " || modinfo br_netfilter >/dev/null; } && v=yes; echo bridge_nf=$v; "
    "v=; test -w /proc/sys/net/ipv4/ip_forward && v=yes; echo forward_ok=$v; "
    "v=; for t in curl python3; do command -v $t >/dev/null || v=\"$v$t \"; done; "
    "echo missing=$v; "
    "ss -Hltnup 2>/dev/null | awk '{print \"listen=\" $1 \"/\" $5 \" \" $7}'"
)


def vxlan_probe(ctx: DeployContext) -> str:
    """Whether the kernel has vxlan: flanneld's device proves it; else one is made and deleted.
    iproute2 6.1 cannot create vxlan links on newer kernels ("failed policy validation"), which
    still proves it (flannel uses netlink directly)."""
    device = shlex.quote(f"/sys/class/net/{paths.flannel_device(ctx.data)}")
    return (f"if [ -e {device} ]; then echo vxlan=yes; else "
            "out=$(ip link add kubesmith-probe0 type vxlan id 42 dstport 4790 2>&1); "
            "ip link delete kubesmith-probe0 2>/dev/null; "
            "case \"$out\" in ''|*'policy validation'*) echo vxlan=yes;; esac; fi; ")


def etcd_data_probe(ctx: DeployContext) -> str:
    """Whether the etcd data directory holds a member already."""
    member = shlex.quote(f"{ctx.data['etcd_data_dir']}/member")
    return f"echo etcd_data=$(test -d {member} && echo yes); "


# Container runtimes and kubelets kubesmith must not run beside: refused when running (or, for
# the two kubesmith installs, present) and not in the host's manifest.
RUNTIMES = ("containerd", "kubelet", "dockerd", "crio")
INSTALLS = ("containerd", "kubelet")


def runtime_probe(ctx: DeployContext) -> str:
    """Running runtimes and kubelets (their executables), such binaries on PATH or in bin_dir,
    the host's manifest and the sha256 of its cluster CA certificate."""
    bin_dir = shlex.quote(str(ctx.data["bin_dir"]))
    ca = shlex.quote(f"{ctx.data['pki_dir']}/kubernetes-ca.crt")
    return (
        f"pgrep -x -l {shlex.quote('|'.join(RUNTIMES))} | while read -r p n; do "
        'echo "running=$n $(readlink /proc/$p/exe)"; done; '
        f'for n in {" ".join(INSTALLS)}; do for d in $(echo "$PATH" | tr : " ") {bin_dir}; do '
        '[ -x "$d/$n" ] && echo "present=$n $(readlink -f "$d/$n")"; done; done; '
        f"sed 's/^/manifest=/' {manifest.PATH} 2>/dev/null; "
        f"[ -f {ca} ] && echo ca=$(sha256sum < {ca} | cut -c1-64); "
    )


def foreign_runtimes(ctx: DeployContext, found: dict[str, list[str]]) -> list[str]:
    """Runtimes and kubelets on the host that kubesmith did not install: not in its manifest,
    nor (a host of an earlier kubesmith, before manifests) kubesmith's own binary beside this
    cluster's CA."""
    recorded = {v for k, _s, v in (m.partition(" ") for m in found.get("manifest", []))
                if k == "file"}
    ca = ctx.pki.path("kubernetes-ca.crt")
    adopted = ca.exists() and [hashlib.sha256(ca.read_bytes()).hexdigest()] == found.get("ca")
    issues: dict[tuple[str, str], str] = {}
    for key, verb in (("running", "runs"), ("present", "has")):
        for entry in found.get(key, []):
            name, _sep, path = entry.partition(" ")
            path = path.removesuffix(" (deleted)")
            ours = path in recorded or (adopted and path == f"{ctx.data['bin_dir']}/{name}")
            if not ours and (name, path) not in issues:
                issues[(name, path)] = (
                    f"{verb} {name} ({path or '?'}) that kubesmith did not install (not in "
                    f"{manifest.PATH}): it would fight kubesmith's runtime and kubelet; "
                    "remove it or use another host")
    return list(issues.values())


def installed(ctx: DeployContext, me: Host) -> dict[str, tuple[str, str]]:
    """{service: (sha256, pinned version)} of the executables kubesmith installs for the
    host's services (versions.probe: one installed and unchanged is not run for its version)."""
    found = {}
    for name, key in versions.watched(ctx.cluster, me).items():
        if name in SERVICES:
            sha256 = artifacts.service_binaries(ctx, name)[SERVICES[name].files[0]].sha256
            if sha256:  # (none in a dry run on a fresh cache)
                found[name] = (sha256, str(ctx.data[key]))
    return found


def facts(ctx: DeployContext) -> dict[str, list[str]]:
    """The probe's key=value lines of this host (listen may repeat)."""
    me = ctx.cluster.host(host.name)
    running = versions.probe(ctx.cluster, me, str(ctx.data["bin_dir"]), installed(ctx, me))
    output = host.get_fact(_ops.ShellOutput,
                           probe=f"{etcd_data_probe(ctx)}{runtime_probe(ctx)}{vxlan_probe(ctx)}"
                                 f"{PROBE}; {running}")
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value.strip())
    return found


def _system(first: dict[str, str], allow_swap: bool) -> list[str]:
    """Architecture, OS, swap, disk and kernel features."""
    issues = []
    if first.get("arch") not in SUPPORTED_ARCH:
        issues.append(f"architecture {first.get('arch')} unsupported (need {SUPPORTED_ARCH})")
    if not first.get("os", "").startswith(("debian-", "ubuntu-")):
        issues.append(f"OS {first.get('os')} unsupported (Debian or Ubuntu)")
    if first.get("swap", "0") != "0" and not allow_swap:
        issues.append("swap is on: swapoff -a (or set allow_swap = True in group_data)")
    if int(first.get("free_kib") or 0) < MIN_FREE_KIB:
        issues.append(f"only {int(first.get('free_kib') or 0) // 1024} MiB free on /: need 2 GiB")
    for key, what in (("bridge_nf", "bridge netfilter"), ("forward_ok", "ip_forward"),
                      ("vxlan", "vxlan links")):
        if first.get(key) != "yes":
            issues.append(f"{what} not available")
    return issues


def tools_missing(ctx: DeployContext, me: Host, missing: list[str]) -> str:
    """What the binary mirror needs that the host lacks, in one line (empty: nothing): curl on
    every host, which fetches its binaries, and python3 on the first master, which serves them."""
    seed = ctx.cluster.masters[0]
    needed = [t for t in missing if t == "curl" or (t == "python3" and me == seed)]
    if not needed:
        return ""
    return (f"{' and '.join(needed)} not found: every host fetches its binaries with curl from "
            f"the binary mirror that {seed.name} serves with python3; install "
            f"{' and '.join(needed)} (apt-get install {' '.join(needed)})")


def kernel_limits(found: dict[str, list[str]]) -> list[str]:
    """Node kernel limits below what kubelet needs, each with its value and what to set."""
    values = dict(line.split()[:2] for line in found.get("limit", []) if len(line.split()) >= 2)
    issues = []
    for name, minimum in NODE_LIMITS.items():
        value = values.get(name, "")
        if not value.isdigit() or int(value) < minimum:
            issues.append(f"{name} is {value or 'unreadable'}, kubelet needs >= {minimum}: "
                          f"sysctl -w {name}={minimum} (and keep it in /etc/sysctl.d/)")
    return issues


def _foreign_holders(listening: list[str], port: str, owner: str) -> list[str]:
    """Processes other than the owning service that listen on a proto/port."""
    proto, number = port.split("/")
    holders = [line.split(" ", 1)[1] if " " in line else "?" for line in listening
               if line.startswith(proto) and line.split(" ")[0].endswith(f":{number}")]
    # A vxlan port held by no process is the kernel's socket of flanneld's vxlan device.
    return [h for h in holders if f'"{owner}"' not in h and owner[:15] not in h
            and not (port == f"udp/{FLANNEL_VXLAN_PORT}" and h == "?")]


def problems(ctx: DeployContext, me: Host, found: dict[str, list[str]]) -> list[str]:
    """What is wrong on this host for its roles (empty when it can be deployed)."""
    first = {k: v[0] for k, v in found.items()}
    issues = _system(first, bool(ctx.data.get("allow_swap")))
    issues += foreign_runtimes(ctx, found)
    if ctx.mirror and (missing := tools_missing(ctx, me, first.get("missing", "").split())):
        issues.append(missing)
    if me.has("nodes"):
        issues += kernel_limits(found)
    if me.has("nodes") and first.get("os") not in NODE_OS:
        issues.append(f"OS {first.get('os')} unsupported for a node: its apiserver balancer is "
                      f"installed from Debian 12 (bookworm) packages ({', '.join(NODE_OS)})")
    keys = versions.watched(ctx.cluster, me)
    running = versions.parse("\n".join(f"{k}={v[0]}" for k, v in found.items()
                                       if k.startswith(versions.PREFIX)))
    issues += versions.newer_than_pinned(running, versions.targets(ctx.data, keys), keys)
    for service in SERVICES.values():
        if me not in getattr(ctx.cluster, service.role):
            continue
        for port in service.ports:
            foreign = _foreign_holders(found.get("listen", []), port,
                                       service.process or service.name)
            if foreign:
                issues.append(f"port {port} is held by {foreign[0]} (needed by {service.name})")
    return issues


def clock_skew(offsets: dict[str, float]) -> list[str]:
    """Hosts whose clock (offset from the control machine's) is > 1 s from the others' median."""
    if len(offsets) < 2:
        return []
    values = sorted(offsets.values())
    median = values[len(values) // 2]
    return [f"{name}: clock {value - median:+.2f} s from the other hosts (sync time: NTP)"
            for name, value in offsets.items() if abs(value - median) > 1.0]


def duplicate_hostnames(names: dict[str, str]) -> list[str]:
    """Inventory hosts whose machines report the same hostname."""
    seen: dict[str, str] = {}
    dupes = []
    for inventory_name, hostname in names.items():
        if hostname in seen:
            dupes.append(f"{inventory_name}: hostname {hostname!r} is also {seen[hostname]}'s")
        seen.setdefault(hostname, inventory_name)
    return dupes


def unjoined_members(has_data: dict[str, bool]) -> list[str]:
    """etcd hosts without data while others already run a cluster: they must join, not bootstrap."""
    empty = sorted(name for name, data in has_data.items() if not data)
    if not empty or len(empty) == len(has_data):
        return []
    names = " ".join(empty)
    return [f"{', '.join(empty)}: no etcd data while the others run a cluster; join with "
            f"`python deploy.py add-etcd {names}`"]


def check(ctx: DeployContext, connected: list[PyinfraHost], whole_cluster: bool,
          clocks: Mapping[str, float]) -> list[str]:
    """Every problem of these connected hosts, each line naming its host (read-only); a host's
    clock offset is read live unless given (read with the host's read-ahead batch)."""
    issues: list[str] = []
    etcd_data: dict[str, bool] = {}
    offsets: dict[str, float] = {}
    hostnames: dict[str, str] = {}

    def read(remote: PyinfraHost) -> tuple[dict[str, list[str]], float]:
        with ctx_host.use(remote):
            found = facts(ctx)
            if remote.name in clocks:
                return found, clocks[remote.name]
            before = time.time()  # the clock read on its own, when asked (never read ahead)
            clock = host.get_fact(_ops.ShellOutput, probe="date +%s.%N", **readahead.LIVE)
        return found, float(clock or 0) - (before + time.time()) / 2

    # Every host probed at once (pyinfra's state context is global: set once, around them).
    with ctx_state.use(connected[0].state) if connected else contextlib.nullcontext():
        probed = each(connected, read)
    for remote, (found, offset) in zip(connected, probed, strict=True):
        offsets[remote.name] = offset
        hostnames[remote.name] = found.get("hostname", [remote.name])[0]
        me = ctx.cluster.host(remote.name)
        issues += [f"{remote.name}: {p}" for p in problems(ctx, me, found)]
        if me.has("etcd"):
            etcd_data[remote.name] = found.get("etcd_data", [""])[0] == "yes"
    issues += clock_skew(offsets) + duplicate_hostnames(hostnames)
    if whole_cluster:
        issues += unjoined_members(etcd_data)
    return issues


def refusal(issues: list[str], advice: str = "") -> str:
    """The error message of a failed preflight: every problem, and that nothing was changed."""
    return "preflight failed, nothing was changed:\n  " + "\n  ".join(issues) + advice
