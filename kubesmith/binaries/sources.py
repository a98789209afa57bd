"""Fill the cache from one of three sources, and hand out verified component directories."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from kubesmith.binaries import cache, debian, gobuild, images, toolchain, upstream
from kubesmith.binaries.progress import heartbeat
from kubesmith.binaries.recipes import COMPONENTS, Component
from kubesmith.errors import UserError

SOURCES = ("build", "mirror", "download")


class SourceError(UserError):
    """A source could not provide a component."""


def _staging(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=".staging-"))


def from_build(component: Component, version: str, arch: str, out: Path,
               versions: dict[str, str]) -> None:
    """Source (c): build from Go modules (images are assembled locally; Debian packages are
    fetched with apt, the only way they travel)."""
    if component.debs:
        debian.fetch(component.debs, version, arch, out)
        return
    if component.image != "busybox":  # every other component needs Go (pause: its module)
        toolchain.require()
    if component.image:
        images.build(component.image, version, out, versions, arch)
    else:
        gobuild.build(component, version, arch, out)


def from_mirror(component: Component, version: str, arch: str, out: Path, mirror: Path) -> None:
    """Source (b): copy from a local directory in the cache layout, checking its manifest."""
    src = cache.component_dir(mirror, component.name, version, arch)
    sums = cache.verify(src, component.files)
    for name in component.files:
        shutil.copy2(src / name, out / name)
        actual = cache.sha256_file(out / name)
        if actual != sums[name]:
            raise cache.ChecksumMismatch(out / name, sums[name], actual)


def _fetch(url: str, target: Path, base: str | None) -> None:
    """Download url (or its copy under a mirror base URL) to target, saying how long."""
    source = upstream.mirror_url(url, base)
    print(f"  fetching {source}", file=sys.stderr, flush=True)
    start = time.monotonic()
    try:
        with heartbeat(f"fetching {target.name}"), \
                urllib.request.urlopen(source, timeout=60) as response, open(target, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
    except (urllib.error.URLError, OSError) as error:
        raise SourceError(f"download of {source} failed: {error}") from error
    size = target.stat().st_size
    print(f"  fetched {target.name}: {size / 2**20:.1f} MiB in {time.monotonic() - start:.0f} s",
          file=sys.stderr, flush=True)


def from_download(component: Component, version: str, arch: str, out: Path,
                  versions: dict[str, str], base: str | None = None) -> None:
    """Source (a): upstream release files, each checked against the sum upstream published.
    Debian packages and the busybox image come from Debian's archive as on the build path."""
    if component.debs or component.image == "busybox":
        from_build(component, version, arch, out, versions)
        return
    for artifact in upstream.artifacts(component.name, versions, arch):
        target = out / ".download" / artifact.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        _fetch(artifact.url, target, base)
        upstream.check(artifact, target)
        upstream.unpack(artifact, target, out)
    shutil.rmtree(out / ".download", ignore_errors=True)
    if component.image == "pause":
        images.pause_image(out / "pause.c", version, out)
        (out / "pause.c").unlink()
    elif component.image in images.GO_IMAGES:
        images.go_image(component.image, version, out, out, arch)
        (out / component.image).unlink()


def ensure(name: str, versions: dict[str, str], arch: str | None = None,
           root: Path | None = None, source: str = "build", mirror: Path | None = None,
           base: str | None = None) -> Path:
    """A verified cache directory for the component, filled from the source when missing
    (base: a mirror of upstream's URL layout for source 'download')."""
    component = COMPONENTS[name]
    version = versions[component.version_key]
    arch = arch or cache.host_arch()
    final = cache.component_dir(root or cache.default_root(), name, version, arch)
    try:
        cache.verify(final, component.files)  # a mismatch raises, naming the file and both sums
        return final
    except cache.CacheIncomplete:
        pass
    print(f"binaries: {name} {version} ({arch}) from {source}", file=sys.stderr, flush=True)
    start = time.monotonic()
    staging = _staging(final)
    try:
        if source == "build":
            from_build(component, version, arch, staging, versions)
        elif source == "mirror":
            if mirror is None:
                raise SourceError("--mirror DIR is required with source 'mirror'")
            from_mirror(component, version, arch, staging, mirror)
        elif source == "download":
            from_download(component, version, arch, staging, versions, base)
        else:
            raise SourceError(f"unknown source {source!r}: one of {', '.join(SOURCES)}")
        cache.publish(staging, final, component.files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"binaries: {name} {version} ({arch}) ready in {time.monotonic() - start:.0f} s",
          file=sys.stderr, flush=True)
    return final
