"""Command line of deploy.py: lab, binaries, and (via kubesmith.deployer) the cluster commands."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from kubesmith import libvirt_host, settings, vagrant_box
from kubesmith.binaries import cache, sources
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.lab import hosts as lab
from kubesmith.lab import rootfs
from kubesmith.lab.state import DEFAULT_SUBNET

DEFAULT_INVENTORY = settings.PROJECT / "inventories" / "lab.py"


def _lab(args: argparse.Namespace) -> int:
    if args.action == "image":
        tree = rootfs.ensure_extracted(rootfs.ensure_tarball())
        print(f"lab: root filesystem ready at {tree}")
    elif args.action in ("up", "status", "stop", "start"):
        if args.action == "up":
            lab.up(args.hosts, args.subnet)
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
    versions = settings.versions()
    names = args.names or list(COMPONENTS)
    root = Path(args.cache) if args.cache else cache.default_root()
    for name in names:
        if name not in COMPONENTS:
            print(f"binaries: unknown component {name!r}; known: {', '.join(COMPONENTS)}",
                  file=sys.stderr)
            return 2
    for name in names:
        directory = sources.ensure(name, versions, args.arch, root, args.source,
                                   Path(args.mirror) if args.mirror else None)
        print(f"{name:<14} {versions[COMPONENTS[name].version_key]:<10} {directory}")
    return 0


def _vagrant(args: argparse.Namespace) -> int:
    """Build (once) and add kubesmith's libvirt box, or start/stop libvirtd for Vagrant."""
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


def _up(args: argparse.Namespace) -> int:
    from kubesmith.deployer import run_command

    return run_command(lambda d: d.up(args.dry, args.skip_preflight), Path(args.inventory))


def _add_node(args: argparse.Namespace) -> int:
    from kubesmith.deployer import run_command

    return run_command(lambda d: d.add_nodes(args.names, args.dry, args.skip_preflight),
                       Path(args.inventory))


def _grow(role: str):
    """A command adding hosts of a role (etcd members or masters) with the cluster serving."""
    def command(args: argparse.Namespace) -> int:
        from kubesmith.deployer import run_command

        return run_command(lambda d: d.grow(args.names, role, args.skip_preflight),
                           Path(args.inventory))
    return command


def _verify(args: argparse.Namespace) -> int:
    """Run the testinfra verification suite against the inventory's hosts."""
    command = [sys.executable, "-m", "pytest", str(settings.PROJECT / "tests" / "verify"),
               "-q", "--tb=line", "-p", "no:cacheprovider", "-o", "testpaths=",
               "-n", "4", "--dist", "loadgroup",
               "--rootdir", str(settings.PROJECT)]
    if args.junit:
        command.append(f"--junitxml={args.junit}")
    if args.k:
        command += ["-k", args.k]
    env = dict(os.environ, KUBESMITH_VERIFY_INVENTORY=str(Path(args.inventory).resolve()))
    return subprocess.run(command, env=env, cwd=settings.PROJECT, check=False).returncode


def _cis(args: argparse.Namespace) -> int:
    from kubesmith import cis
    from kubesmith.deployer import run_command

    return run_command(cis.run, Path(args.inventory))


def _remove_node(args: argparse.Namespace) -> int:
    from kubesmith.deployer import run_command

    return run_command(lambda d: d.remove_nodes(args.names), Path(args.inventory))


def _reset(args: argparse.Namespace) -> int:
    from kubesmith.deployer import run_command

    targets = ", ".join(args.names) if args.names else "EVERY host of the inventory"
    if not args.yes:
        try:
            answer = input(f"reset {targets}: remove all kubesmith installed there? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("\nreset: nothing done (confirm with y, or pass --yes)")
            return 1
    return run_command(lambda d: d.reset(args.names), Path(args.inventory))


def parser() -> argparse.ArgumentParser:
    """The argument parser of deploy.py."""
    top = argparse.ArgumentParser(prog="deploy.py", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p_lab = sub.add_parser("lab", help="local systemd-nspawn lab hosts")
    p_lab.add_argument("action", choices=("image", "up", "status", "down", "stop", "start"))
    p_lab.add_argument("name", nargs="?", help="stop/start: the lab host, e.g. lab-2")
    p_lab.add_argument("--kill", action="store_true",
                       help="stop: SIGKILL the whole host (a crash) instead of a clean shutdown")
    p_lab.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    p_lab.add_argument("--subnet", default=None, help=f"lab subnet (default {DEFAULT_SUBNET})")
    p_lab.set_defaults(func=_lab)

    def cluster_command(name: str, help_: str, func, names: str | None = None,
                        dry: bool = False) -> argparse.ArgumentParser:
        """A subcommand that works on an inventory (and optionally on named hosts)."""
        command = sub.add_parser(name, help=help_)
        if names:
            command.add_argument("names", nargs=names)
        command.add_argument("-i", "--inventory", default=str(DEFAULT_INVENTORY),
                             help="pyinfra inventory file (default: the local lab)")
        if dry:
            command.add_argument("--dry", action="store_true",
                                 help="show what would change, change nothing")
            command.add_argument("--skip-preflight", action="store_true",
                                 help="do not check the hosts (OS, swap, ports, clocks) first")
        command.set_defaults(func=func)
        return command

    cluster_command("up", "bootstrap or converge the cluster of an inventory", _up, dry=True)
    cluster_command("add-node", "bring up new nodes (already in the inventory) only",
                    _add_node, "+", dry=True)
    for role, name in (("etcd", "add-etcd"), ("masters", "add-master")):
        grow = cluster_command(name, f"add {role} hosts (in the inventory) one at a time, the "
                               "cluster serving throughout", _grow(role), "+")
        grow.add_argument("--skip-preflight", action="store_true",
                          help="do not check the new hosts first")
    cluster_command("remove-node", "drain, delete and reset nodes", _remove_node, "+")
    p_reset = cluster_command("reset", "remove everything kubesmith installed on hosts",
                              _reset, "*")
    p_reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p_verify = cluster_command("verify", "prove a cluster with testinfra (per host, per check)",
                               _verify)
    p_verify.add_argument("--junit", help="also write a JUnit XML report to this file")
    p_verify.add_argument("-k", help="only the checks matching this pytest -k expression")

    cluster_command("cis", "run kube-bench (CIS benchmark) on masters and nodes; exit 1 on a "
                    "FAIL that is not a documented exception", _cis)
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
    p_bin.add_argument("--source", choices=sources.SOURCES, default="build")
    p_bin.add_argument("--mirror", help="directory in the cache layout (source mirror)")
    p_bin.add_argument("--cache", help="cache root (default $KUBESMITH_CACHE or /var/cache)")
    p_bin.add_argument("--arch", default=None)
    p_bin.set_defaults(func=_binaries)
    return top


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the command; errors print one line and exit non-zero."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (lab.LabError, sources.SourceError, cache.ChecksumMismatch,
            cache.CacheIncomplete, vagrant_box.BoxError,
            libvirt_host.LibvirtHostError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
