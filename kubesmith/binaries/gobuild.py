"""Source (c): build a component from its Go modules through the Go module proxy."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from kubesmith.binaries import toolchain
from kubesmith.binaries.progress import heartbeat
from kubesmith.binaries.recipes import Component, GoRecipe
from kubesmith.errors import UserError


class BuildError(UserError):
    """A go command failed while building a component."""


def _go(args: list[str], cwd: Path, env: dict[str, str], capture: bool = False,
        label: str = "") -> str:
    """Run one go command (saying every minute that it still runs); raise BuildError with its
    output on failure."""
    with heartbeat(label or f"running go {args[0]}"):
        proc = subprocess.run(
            ["go", *args], cwd=cwd, env=env, text=True,
            stdout=subprocess.PIPE if capture else sys.stderr,
            stderr=subprocess.PIPE if capture else sys.stderr,
            check=False,
        )
    if proc.returncode != 0:
        detail = (proc.stderr or "")[-2000:] if capture else ""
        raise BuildError(f"go {' '.join(args)} failed (exit {proc.returncode}) in {cwd}\n{detail}")
    return proc.stdout if capture else ""


def go_env(recipe: GoRecipe, arch: str) -> dict[str, str]:
    """The environment for a reproducible, local-toolchain build."""
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",
        GOOS="linux",
        GOARCH=arch,
        CGO_ENABLED="1" if recipe.cgo else "0",
        GOFLAGS="-mod=mod",
        GOWORK="off",
    )
    return env


def module_info(module: str, version: str, cwd: Path, env: dict[str, str]) -> dict:
    """`go mod download -json` for one module version (fetches it into the module cache)."""
    info = json.loads(_go(["mod", "download", "-json", f"{module}@{version}"], cwd, env, True,
                          f"downloading {module}@{version}"))
    if info.get("Error"):
        raise BuildError(f"{module}@{version}: {info['Error']}")
    return info


def require_go_line(module: str, version: str, gomod: str) -> None:
    """Raise GoMissing (one line) when the local Go is older than the module's `go` line."""
    match = re.search(r"^go\s+(\S+)", Path(gomod).read_text(), re.MULTILINE)
    if match:
        toolchain.require(match.group(1), f"{module} {version} (its go.mod says go "
                                          f"{match.group(1)})")


def parse_gomod(path: str, cwd: Path, env: dict[str, str]) -> dict:
    """An upstream go.mod as `go mod edit -json` reads it."""
    return json.loads(_go(["mod", "edit", "-json", path], cwd, env, True))


def staging_version(version: str) -> str:
    """Kubernetes staging modules are tagged v0.<minor>.<patch> for release v1.<minor>.<patch>."""
    _major, minor, patch = version.lstrip("v").split(".", 2)
    return f"v0.{minor}.{patch}"


def wrapper_gomod(name: str, recipe: GoRecipe, version: str, upstreams: list[dict]) -> str:
    """A throwaway go.mod that requires the modules and pins their local-path replaces."""
    local_version = staging_version(version) if recipe.local_replace == "k8s-staging" else version
    go_line = max((u.get("Go") or "1.21" for u in upstreams), key=_version_key)
    lines = [f"module kubesmith.build/{name}", "", f"go {go_line}", ""]
    godebug = {d["Key"]: d["Value"] for u in upstreams for d in u.get("Godebug") or []}
    lines += [f"godebug {key}={value}" for key, value in sorted(godebug.items())]
    lines += [f"require {module} {version}" for module in recipe.modules]
    replaces: dict[str, str] = {}
    for upstream in upstreams:
        required = {r["Path"] for r in upstream.get("Require") or []}
        for rep in upstream.get("Replace") or []:
            old, new = rep["Old"], rep["New"]
            if new["Path"].startswith("."):
                # A path replace pins a sibling module; ones not required are guards upstream.
                if old["Path"] in required:
                    replaces[old["Path"]] = f"{old['Path']} {local_version}"
            else:
                old_spec = old["Path"] + (f" {old['Version']}" if old.get("Version") else "")
                replaces[old_spec] = f"{new['Path']} {new.get('Version', '')}".strip()
    lines += [f"replace {old} => {new}" for old, new in sorted(replaces.items())]
    excludes = {(e["Path"], e["Version"]) for u in upstreams for e in u.get("Exclude") or []}
    lines += [f"exclude {path} {ver}" for path, ver in sorted(excludes)]
    return "\n".join(lines) + "\n"


def _version_key(go_version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in go_version.split(".") if part.isdigit())


def stamp_values(version: str, info: dict) -> dict[str, str]:
    """Values for the ldflags templates, taken from the module's proxy metadata."""
    bare = version.lstrip("v")
    major, minor = (bare.split(".") + ["0"])[:2]
    commit = (info.get("Origin") or {}).get("Hash", "unknown")
    return {
        "version": version,
        "bare_version": bare,
        "major": major,
        "minor": minor,
        "commit": commit,
        "short_commit": commit[:7],
        "date": info.get("Time", "1970-01-01T00:00:00Z").replace(".000Z", "Z"),
    }


def build(component: Component, version: str, arch: str, out_dir: Path) -> None:
    """Build every binary of a component into out_dir."""
    recipe = component.go
    if recipe is None:
        raise BuildError(f"{component.name} is not built from Go modules")
    env = go_env(recipe, arch)
    with tempfile.TemporaryDirectory(prefix=f"kubesmith-build-{component.name}-") as tmp:
        work = Path(tmp)
        infos = [module_info(m, version, work, env) for m in recipe.modules]
        for module, info in zip(recipe.modules, infos, strict=True):
            require_go_line(module, version, info["GoMod"])
        upstreams = [parse_gomod(info["GoMod"], work, env) for info in infos]
        (work / "go.mod").write_text(wrapper_gomod(component.name, recipe, version, upstreams))
        for spec in recipe.extra_requires:
            _go(["get", spec], work, env)
        values = stamp_values(version, infos[0])
        ldflags = " ".join(["-s", "-w", *(flag.format(**values) for flag in recipe.ldflags)])
        args = ["build", "-trimpath", "-ldflags", ldflags]
        if recipe.tags:
            args += ["-tags", ",".join(recipe.tags)]
        # Test binaries first: a later `go build` of a package from a module not yet required
        # (k8s.io/sample-apiserver) adds it to the wrapper's module graph.
        for output, package in recipe.test_binaries:
            print(f"  go test -c {package} -> {output}", file=sys.stderr, flush=True)
            test_args = ["test", "-c", "-vet=off", *args[1:]]
            _go([*test_args, "-o", str(out_dir / output), package], work, env,
                label=f"building {output}")
        for output, package in recipe.packages.items():
            print(f"  go build {package} -> {output}", file=sys.stderr, flush=True)
            _go([*args, "-o", str(out_dir / output), package], work, env,
                label=f"building {output}")
        for output, subdir in recipe.archives:
            print(f"  pack {recipe.modules[0]}/{subdir} -> {output}", file=sys.stderr, flush=True)
            pack(Path(infos[0]["Dir"]), subdir, out_dir / output)


def pack(root: Path, subdir: str, output: Path) -> None:
    """root/subdir as a reproducible .tar.gz: sorted, root-owned, zero mtimes, 644/755 modes."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    paths = [root / subdir, *sorted((root / subdir).rglob("*"))]
    with open(output, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False, filter=normalise)
