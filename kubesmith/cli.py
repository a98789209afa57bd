"""Command line of deploy.py: local commands (lab, binaries, vagrant) and the cluster workflows
(kubesmith/workflows/, one module each), run against an inventory by the phase runner."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubesmith import settings
from kubesmith.errors import UserError

DEFAULT_INVENTORY = settings.PROJECT / "inventories" / "lab.py"
DEFAULT_SUBNET = "10.240.0.0/24"  # kubesmith.lab.state's default, for --help
CALENDAR = re.compile(r"[A-Za-z0-9*:,./~ -]{1,64}")


def _lab(args: argparse.Namespace) -> int:
    """Boot, show, stop or build the local lab."""
    from kubesmith.lab import hosts as lab
    from kubesmith.lab import rootfs

    if args.action == "image":
        tree = rootfs.ensure_extracted(rootfs.ensure_tarball())
        print(f"lab: root filesystem ready at {tree}")
    elif args.action in ("up", "status", "stop", "start"):
        if args.action == "up":
            lab.up(args.hosts, args.subnet, bridge=args.bridge)
        elif not args.name and args.action != "status":
            raise lab.LabError(f"lab {args.action} needs a host name, e.g. lab {args.action} lab-2")
        elif args.action == "stop":
            lab.stop(args.name, kill=args.kill)
        elif args.action == "start":
            lab.start(args.name)
        rows = lab.status()
        if not rows:
            print("lab: no hosts")
        for row in rows:
            print(f"{row['host']:<8} {row['address']:<15} {row['process']:<22} ssh {row['ssh']}")
    else:
        left = lab.down()
        if left:
            print("lab: could not remove: " + ", ".join(left), file=sys.stderr)
            return 1
        print("lab: down, nothing left behind")
    return 0


def _binaries(args: argparse.Namespace) -> int:
    """Fill and verify the binary cache at the versions the inventory's settings pin."""
    from kubesmith.binaries import cache, sources, toolchain
    from kubesmith.binaries.recipes import COMPONENTS
    from kubesmith.validate import check_settings

    data = settings.group_data(Path(args.inventory))
    check_settings(data)  # versions name cache directories and build arguments
    versions = settings.versions(data)
    names = args.names or [name for name, c in COMPONENTS.items() if not c.optional]
    root = Path(args.cache) if args.cache else cache.default_root()
    for name in names:
        if name not in COMPONENTS:
            print(f"binaries: unknown component {name!r}; known: {', '.join(COMPONENTS)}",
                  file=sys.stderr)
            return 2
    arch = args.arch or cache.host_arch()
    if args.source == "download":  # refuse every unpinned file before fetching any
        from kubesmith.binaries import upstream

        missing = [n for n in names if not (cache.component_dir(
            root, n, versions[COMPONENTS[n].version_key], arch) / cache.MANIFEST).exists()]
        refused = upstream.unpinned(missing, versions, arch)
        if refused:
            raise upstream.NotPinned(
                f"binaries --source download: no published sum is pinned for {', '.join(refused)}"
                f" ({arch}) in kubesmith/binaries/upstream.py, so the download path refuses "
                "them: build them with --source build (needs Go ≥ "
                f"{toolchain.MIN_GO}, {toolchain.INSTALL}), or pin the sums upstream publishes "
                "(scripts/update-pins)")
    for name in names:
        directory = sources.ensure(name, versions, arch, root, args.source,
                                   Path(args.mirror) if args.mirror else None,
                                   args.download_base)
        print(f"{name:<14} {versions[COMPONENTS[name].version_key]:<10} {directory}")
    return 0


def _vagrant(args: argparse.Namespace) -> int:
    """Build (once) and add kubesmith's libvirt box, or start/stop libvirtd for Vagrant."""
    from kubesmith import libvirt_host, vagrant_box

    if args.action == "box":
        box = vagrant_box.ensure_box()
        print(f"vagrant: box file {box}", file=sys.stderr)
        name = vagrant_box.ensure_added(box) if args.add else vagrant_box.box_name(
            box.parent.parent.name)
        print(name)
    elif args.action == "libvirt-start":
        before = libvirt_host.start()
        started = ", ".join(f"{d} (pid {p})" for d, p in before.started.items()) or "nothing"
        print(f"vagrant: libvirtd answers on {libvirt_host.URI}; started {started}")
    else:
        left = libvirt_host.stop()
        if left:
            print("vagrant: could not restore: " + ", ".join(left), file=sys.stderr)
            return 1
        print("vagrant: libvirt stopped if kubesmith started it; machine restored")
    return 0


# Cluster workflows: each adapter imports its module late, after gevent's monkey-patching.
def _up(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import up

    return up.run(runner, args.dry, args.skip_preflight)


def _add_node(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import add_node

    return add_node.run(runner, args.names, args.dry, args.skip_preflight)


def _upgrade(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import upgrade

    return upgrade.run(runner, args.inventory, args.dry, args.to)


def _add_etcd(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import add_etcd

    return add_etcd.run(runner, args.names, args.skip_preflight)


def _add_master(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import add_master

    return add_master.run(runner, args.names, args.skip_preflight)


def _remove_node(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import remove_node

    return remove_node.run(runner, args.names)


def _rotate_encryption_key(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import rotate_encryption_key

    return rotate_encryption_key.run(runner)


def _reset(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import reset

    return reset.run(runner, args.names, args.force)


def _cis(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import cis

    return cis.run(runner)


def _conformance(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import conformance

    return conformance.run(runner, args.focus, args.quick, args.junit, args.procs)


def _backup(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import backup

    return backup.run(runner, Path(args.dest) if args.dest else None, args.keep, args.schedule)


def _restore(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import restore

    return restore.run(runner, Path(args.snapshot), args.yes)


def _positive(text: str) -> int:
    """--keep, --procs: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def _calendar(text: str) -> str:
    """--schedule: a systemd OnCalendar expression of plain characters."""
    if not CALENDAR.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a systemd calendar expression "
                                         "(e.g. daily, hourly, '*-*-* 02:30:00')")
    return text


def _certs_check(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import certs_check

    return certs_check.run(runner, timedelta(days=args.within))


def _certs_renew(runner: Any, args: argparse.Namespace) -> object:
    from kubesmith.workflows import certs_renew

    if args.schedule:
        print(certs_renew.schedule(runner.ctx, Path(args.inventory)))
        return None
    within = None if args.within is None else timedelta(days=args.within)
    return certs_renew.run(runner, within, args.all)


def _days(value: str) -> float:
    """A number of days >= 0 (fractions allowed: 0.01 is 14.4 minutes)."""
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not 0 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"{value!r} days: use 0 to 36500")
    return days


def _confirm(args: argparse.Namespace, ctx: Any) -> bool:
    """reset and remove-node ask first, naming the inventory, its state and the hosts (unless
    --yes); other commands go on."""
    if args.command not in ("reset", "remove-node") or args.yes:
        return True
    from kubesmith.workflows import reset

    hosts = ", ".join(h.name for h in reset.targets(ctx.cluster, args.names))
    what = ("stop and remove what kubesmith installed there" if args.command == "reset"
            else "drain, delete, leave etcd and reset them")
    try:
        answer = input(f"{args.command} {hosts} of inventory {ctx.inventory} (state {ctx.state}): "
                       f"{what}? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    print(f"\n{args.command}: nothing done (confirm with y, or pass --yes)")
    return False


def _workflow(args: argparse.Namespace) -> int:
    """Load and validate the inventory, ask when the command destroys, then run the command's
    workflow with a phase runner."""
    from kubesmith import context
    from kubesmith.runner import Runner

    ctx = context.load(Path(args.inventory))
    if not _confirm(args, ctx):
        return 1
    runner = Runner(ctx, trust_new_host_keys=getattr(args, "trust_new_host_keys", False))
    try:
        args.workflow(runner, args)
    finally:
        with contextlib.suppress(UserError):  # a failed workflow's own error comes first
            runner.close()
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Run the testinfra verification suite against the inventory's hosts."""
    command = [sys.executable, "-m", "pytest", str(settings.PROJECT / "tests" / "verify"),
               "-q", "--tb=line", "-p", "no:cacheprovider", "-o", "testpaths=",
               # Workers beyond the cores only add start-up CPU (4 vs 2 on 2 cores: ~2 s slower).
               "-n", str(min(4, os.cpu_count() or 2)), "--dist", "loadgroup",
               "--rootdir", str(settings.PROJECT)]
    if args.junit:
        command.append(f"--junitxml={args.junit}")
    if args.k:
        command += ["-k", args.k]
    # One SSH connection per host and checking process (OpenSSH multiplexing through sockets in
    # a private directory), closed at the end: not one connection per remote command.
    with tempfile.TemporaryDirectory(prefix="ks-ssh-") as control:
        env = dict(os.environ, KUBESMITH_VERIFY_INVENTORY=str(Path(args.inventory).resolve()),
                   KUBESMITH_VERIFY_SSH_CONTROL=control)
        code = subprocess.run(command, env=env, cwd=settings.PROJECT, check=False).returncode
        for socket in Path(control).iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "master"],
                           capture_output=True, check=False, timeout=10)
    return code


def _kubeconfig(args: argparse.Namespace) -> int:
    """Write an admin kubeconfig for a chosen master (by name) or balancer URL."""
    from kubesmith import context, rules
    from tasks import pki

    ctx = context.load(Path(args.inventory))
    server = args.server or ctx.cluster.apiserver_url
    if args.server in {m.name for m in ctx.cluster.masters}:
        server = ctx.cluster.master_url(ctx.cluster.host(args.server))
    elif why := rules.apiserver_endpoint(server):
        print(rules.printable(f"kubeconfig: --server {server!r} {why}, or a master's name"),
              file=sys.stderr)
        return 2
    if not ctx.pki.path("admin.crt").exists():
        print(f"kubeconfig: no PKI in {ctx.state}: run `python deploy.py up` first",
              file=sys.stderr)
        return 1
    default = ("admin.kubeconfig" if args.server is None
               else f"admin-{rules.endpoint_host(server)}.kubeconfig")
    wanted = Path(args.output or ctx.state / default)
    try:
        path = pki.write_operator_kubeconfig(ctx, server, wanted)
    except OSError as error:
        print(rules.printable(f"kubeconfig: cannot write {wanted}: {error.strerror}"),
              file=sys.stderr)
        return 1
    print(f"kubeconfig: {path} (server {server}, mode 0600)")
    return 0


def _cluster_command(sub: Any, name: str, help_: str, workflow: Any = None,
                     names: str | None = None) -> argparse.ArgumentParser:
    """A subcommand that works on an inventory (and optionally on named hosts)."""
    command = sub.add_parser(name, help=help_)
    if names:
        command.add_argument("names", nargs=names)
    command.add_argument("-i", "--inventory", default=str(DEFAULT_INVENTORY),
                         help="pyinfra inventory file (default: the local lab)")
    command.set_defaults(func=_workflow, workflow=workflow, connects=workflow is not None)
    return command


def _preflight_flags(command: argparse.ArgumentParser, dry: bool) -> None:
    """--skip-preflight, --trust-new-host-keys, and --dry for the workflows that can show
    pending changes."""
    if dry:
        command.add_argument("--dry", action="store_true",
                             help="show what would change, change nothing (locally either: no "
                                  "PKI written, no binaries built)")
    command.add_argument("--skip-preflight", action="store_true",
                         help="do not check the hosts (OS, swap, ports, clocks) first")
    command.add_argument("--trust-new-host-keys", action="store_true",
                         help="accept the SSH host key of a host not yet in known_hosts and pin "
                              "it there (check the key first); without it such a host is refused")


def _workflow_commands(sub: Any) -> None:
    """The cluster workflows."""
    _preflight_flags(_cluster_command(sub, "up", "bootstrap or converge the cluster of an "
                                      "inventory", _up), dry=True)
    _preflight_flags(_cluster_command(sub, "add-node", "bring up new nodes (already in the "
                                      "inventory) only", _add_node, "+"), dry=True)
    for role, name, workflow in (("etcd", "add-etcd", _add_etcd),
                                 ("masters", "add-master", _add_master)):
        _preflight_flags(_cluster_command(sub, name, f"add {role} hosts (in the inventory) one "
                                          "at a time, the cluster serving throughout",
                                          workflow, "+"), dry=False)
    move = _cluster_command(sub, "upgrade", "move a running cluster to the versions the "
                            "inventory pins: plan (refused before any change when unsafe), etcd "
                            "snapshot, then etcd, masters and nodes one at a time", _upgrade)
    move.add_argument("--dry", action="store_true",
                      help="print what runs on every host and the plan; change nothing")
    move.add_argument("--to", metavar="VERSION",
                      help="the Kubernetes version to move to (default: kubernetes_version of "
                           "the inventory's settings)")
    remove = _cluster_command(sub, "remove-node", "drain, delete and reset nodes", _remove_node,
                              "+")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _cluster_command(sub, "rotate-encryption-key", "a new Secrets encryption key on every "
                     "apiserver, every Secret rewritten under it, the old key dropped (kept in "
                     "the state directory); resumes an interrupted rotation",
                     _rotate_encryption_key)
    reset = _cluster_command(sub, "reset", "remove what kubesmith installed (its manifest on "
                             "each host) from hosts of the inventory's role groups", _reset, "*")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.add_argument("--force", action="store_true",
                       help="reset a host even if its CA is not this state directory's")
    verify = _cluster_command(sub, "verify", "prove a cluster with testinfra (per host, per "
                              "check)")
    verify.add_argument("--junit", help="also write a JUnit XML report to this file")
    verify.add_argument("-k", help="only the checks matching this pytest -k expression")
    verify.set_defaults(func=_verify)
    kubeconfig = _cluster_command(sub, "kubeconfig", "write an admin kubeconfig (0600) for the "
                                  "cluster's endpoint, a master or a load balancer")
    kubeconfig.add_argument("--server", help="a master's name, or https://HOST[:PORT] of a "
                            "VIP or load balancer (default: apiserver_endpoint, else the first "
                            "master)")
    kubeconfig.add_argument("-o", "--output", help="file to write (default: the cluster state's "
                            "admin.kubeconfig, or admin-<host>.kubeconfig with --server)")
    kubeconfig.set_defaults(func=_kubeconfig)
    suite = _cluster_command(sub, "conformance", "run the Kubernetes conformance suite (e2e.test, "
                             "test images imported on the nodes); exit 1 if a spec fails",
                             _conformance)
    suite.add_argument("--focus", help="only the conformance specs matching this regex")
    suite.add_argument("--quick", action="store_true",
                       help="a fixed subset (network, DNS, Services, a few apps/apimachinery "
                            "specs): minutes, not hours")
    suite.add_argument("--junit", metavar="DIR",
                       help="results directory (e2e.log, junit_01.xml; default "
                            "<state>/conformance/<time>)")
    suite.add_argument("--procs", type=_positive, default=4,
                       help="specs run in parallel ([Serial] ones alone, at the end)")
    _certs_commands(sub)
    saved = _cluster_command(sub, "backup", "an etcd snapshot from a healthy member to the "
                             "control machine (0600, with .sha256 and .json metadata)", _backup)
    saved.add_argument("--dest", metavar="DIR",
                       help="directory for the snapshot (default <state>/backups)")
    saved.add_argument("--keep", type=_positive, metavar="N",
                       help="keep the newest N snapshots in DIR, delete older ones (with "
                            "--schedule: on each member; default there 7)")
    saved.add_argument("--schedule", nargs="?", const="daily", type=_calendar,
                       metavar="CALENDAR",
                       help="instead: install etcd-backup.timer on every etcd member (systemd "
                            "OnCalendar, default daily), snapshots kept in "
                            "/var/lib/kubesmith/backups")
    restored = _cluster_command(sub, "restore", "restore every etcd member from one snapshot "
                                "(checked first), then restart the control plane and nodes",
                                _restore, names=None)
    restored.add_argument("snapshot", help="a .db file written by `backup`")
    restored.add_argument("--yes", action="store_true",
                          help="required: etcd's data is replaced on every member")
    _cluster_command(sub, "cis", "run kube-bench (CIS benchmark) on masters and nodes; exit 1 "
                     "on a FAIL that is not a documented exception", _cis)


def _certs_commands(sub: Any) -> None:
    """certs check and certs renew."""
    certs = sub.add_parser("certs", help="certificate expiry: check every host, renew")
    actions = certs.add_subparsers(dest="certs_command", required=True)
    check = _cluster_command(actions, "check", "every certificate on every host and on the "
                             "control machine: subject, issuer, time left, PKI copy; exit 1 if "
                             "one expires within DAYS", _certs_check)
    check.add_argument("--within", type=_days, default=30.0, metavar="DAYS",
                       help="fail when a certificate expires within DAYS (default 30; "
                            "fractions allowed: 0.25 is 6 hours)")
    renew = _cluster_command(actions, "renew", "re-issue leaf certificates now (CAs unchanged) "
                             "and roll them out host by host, restarting their readers",
                             _certs_renew)
    chosen = renew.add_mutually_exclusive_group()
    chosen.add_argument("--within", type=_days, metavar="DAYS",
                        help="renew those expiring within DAYS (default: those `up` would "
                             "renew: less than a third of leaf_cert_lifetime left)")
    chosen.add_argument("--all", action="store_true", help="renew every leaf certificate")
    chosen.add_argument("--schedule", action="store_true",
                        help="print a crontab line that runs `certs renew` daily (installs "
                             "nothing)")


def _local_commands(sub: Any) -> None:
    """lab, vagrant and binaries: the control machine only."""
    p_lab = sub.add_parser("lab", help="local systemd-nspawn lab hosts")
    p_lab.add_argument("action", choices=("image", "up", "status", "down", "stop", "start"))
    p_lab.add_argument("name", nargs="?", help="stop/start: the lab host, e.g. lab-2")
    p_lab.add_argument("--kill", action="store_true",
                       help="stop: SIGKILL the whole host (a crash) instead of a clean shutdown")
    p_lab.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    p_lab.add_argument("--subnet", default=None, help=f"lab subnet (default {DEFAULT_SUBNET})")
    p_lab.add_argument("--bridge", default=None,
                       help="up: the lab's bridge on this machine (default kslab0), so that labs "
                            "of separate lab directories can run side by side")
    p_lab.set_defaults(func=_lab)
    p_vagrant = sub.add_parser("vagrant", help="kubesmith's libvirt box; libvirtd without systemd")
    p_vagrant.add_argument("action", choices=("box", "libvirt-start", "libvirt-stop"),
                           help="box: build (cached) and print its name; libvirt-start: start "
                                "libvirtd/virtlogd if not running, recording the machine's state; "
                                "libvirt-stop: remove what libvirt added and stop what was started")
    p_vagrant.add_argument("--add", action="store_true",
                           help="box: also `vagrant box add` it (if not added yet)")
    p_vagrant.set_defaults(func=_vagrant)
    p_bin = sub.add_parser("binaries", help="fill and verify the binary cache")
    p_bin.add_argument("names", nargs="*", help="components (default: all)")
    p_bin.add_argument("-i", "--inventory", default=str(DEFAULT_INVENTORY),
                       help="build the versions this inventory's settings pin")
    p_bin.add_argument("--source", choices=("build", "mirror", "download"), default="build")
    p_bin.add_argument("--mirror", help="directory in the cache layout (source mirror)")
    p_bin.add_argument("--download-base", default=None, metavar="URL",
                       help="source download: fetch https://HOST/PATH as URL/HOST/PATH, a "
                            "mirror of upstream's layout (default $KUBESMITH_DOWNLOAD_BASE)")
    p_bin.add_argument("--cache", help="cache root (default $KUBESMITH_CACHE or /var/cache)")
    p_bin.add_argument("--arch", default=None)
    p_bin.set_defaults(func=_binaries)


def parser() -> argparse.ArgumentParser:
    """The argument parser of deploy.py."""
    top = argparse.ArgumentParser(prog="deploy.py", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    _local_commands(sub)
    _workflow_commands(sub)
    return top


def ctrl_c_stops_the_workflow() -> None:
    """Raise Ctrl-C's KeyboardInterrupt in the main greenlet. Python raises it in whatever
    greenlet runs when the signal comes, and one of the SSH transports' (threads under gevent)
    dies of it while the workflow goes on to the end."""
    import signal

    import gevent

    hub = gevent.get_hub()
    gevent.signal_handler(signal.SIGINT, hub.handle_system_error, KeyboardInterrupt,
                          KeyboardInterrupt())


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the command; a UserError prints one line and exits 1, any other
    exception is a bug and shows its traceback."""
    args = parser().parse_args(argv)
    if getattr(args, "connects", False):
        from gevent import monkey  # pyinfra's API runs hosts in parallel on gevent

        monkey.patch_all()
        ctrl_c_stops_the_workflow()
    try:
        return args.func(args)
    except UserError as error:
        print(error.message(), file=sys.stderr)
        return 1
