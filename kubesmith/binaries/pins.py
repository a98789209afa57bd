"""scripts/update-pins: read the sums upstream publishes for the pinned versions and print rows
of kubesmith/binaries/upstream.py's PINNED table, each citing the file it was read from."""

from __future__ import annotations

import argparse
import functools
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from kubesmith import settings
from kubesmith.binaries import upstream
from kubesmith.binaries.recipes import COMPONENTS

CHANGELOG = ("https://raw.githubusercontent.com/kubernetes/kubernetes/master/CHANGELOG/"
             "CHANGELOG-{minor}.md")
# A download row of a Kubernetes CHANGELOG: [file](https://dl.k8s.io/<version>/<file>) | sha512
ROW = re.compile(r"^\[[^\]]+\]\((?P<url>https://dl\.k8s\.io/\S+)\) \| (?P<sum>[0-9a-f]{128})\s*$")
# The sum file each release publishes beside its artifact: artifact URL -> (sum URL, algorithm).
SUM_FILES: dict[str, Callable[[str], tuple[str, str]]] = {
    "crictl": lambda url: (f"{url}.sha256", "sha256"),
    "cni-plugins": lambda url: (f"{url}.sha512", "sha512"),
    "flannel-cni": lambda url: (f"{url}.sha512", "sha512"),
    "containerd": lambda url: (f"{url}.sha256sum", "sha256"),
    "runc": lambda url: (url.rsplit("/", 1)[0] + "/runc.sha256sum", "sha256"),
    "etcd": lambda url: (url.rsplit("/", 1)[0] + "/SHA256SUMS", "sha256"),
    "coredns": lambda url: (f"{url}.sha256", "sha256"),
}
FROM_CHANGELOG = ("kubernetes", "pause-image")


def changelog_sums(text: str, version: str) -> dict[str, str]:
    """{tarball URL: sha512} of one release's "Downloads for <version>" tables."""
    start = re.search(rf"^# {re.escape(version)}\s*$", text, re.MULTILINE)
    if start is None:
        return {}
    end = re.search(r"^# v", text[start.end():], re.MULTILINE)
    section = text[start.end():start.end() + end.start() if end else len(text)]
    rows = (ROW.match(line) for line in section.splitlines())
    return {m["url"]: m["sum"] for m in rows if m and f"/{version}/" in m["url"]}


def sum_file_entry(text: str, filename: str, algorithm: str) -> str | None:
    """The sum of filename in a published sum file: `sha256sum` lines (`<hex>  <name>` or
    `<hex> *<name>`) or a file holding the bare hex digest alone."""
    size = upstream.ALGORITHMS[algorithm]
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for fields in lines:
        if len(fields) == 2 and fields[1].lstrip("*").rsplit("/", 1)[-1] == filename:
            digest = fields[0].lower()
            return digest if re.fullmatch(rf"[0-9a-f]{{{size}}}", digest) else None
    if len(lines) == 1 and len(lines[0]) == 1 and re.fullmatch(rf"[0-9a-f]{{{size}}}",
                                                                 lines[0][0].lower()):
        return lines[0][0].lower()
    return None


def _fetch(url: str, base: str | None) -> str:
    with urllib.request.urlopen(upstream.mirror_url(url, base), timeout=60) as response:
        return response.read().decode()


def row(url: str, algorithm: str, digest: str, cited: str) -> str:
    """One PINNED row, with its citation comment, as upstream.py writes them."""
    half = len(digest) // 2
    return (f"    # {cited}\n    \"{url}\":\n        \"{algorithm}:{digest[:half]}\"\n"
            f"        \"{digest[half:]}\",")


def pins(names: list[str], versions: dict[str, str], arches: list[str],
         fetch: Callable[[str], str]) -> tuple[list[str], list[str]]:
    """(rows, problems): the published sums of the names' artifacts, or why one is missing."""
    rows, problems = [], []
    for name in names:
        for arch in arches:
            try:
                url = upstream._layout(name, versions, arch)[0][0]
            except upstream.NotPinned as error:
                problems.append(str(error))
                continue
            try:
                if name in FROM_CHANGELOG:
                    k8s = versions["kubernetes_version"]
                    source = CHANGELOG.format(minor=".".join(k8s.lstrip("v").split(".")[:2]))
                    digest = changelog_sums(fetch(source), k8s).get(url)
                    algorithm, cited = "sha512", f"{source}, \"Downloads for {k8s}\""
                elif name in SUM_FILES:
                    source, algorithm = SUM_FILES[name](url)
                    digest = sum_file_entry(fetch(source), url.rsplit("/", 1)[-1], algorithm)
                    cited = source
                else:
                    problems.append(f"{name}: its release publishes no sum file kubesmith knows "
                                    "of: left unpinned")
                    continue
            except (urllib.error.URLError, OSError) as error:
                problems.append(f"{name} ({arch}): {source}: {error}")
                continue
            if digest is None:
                problems.append(f"{name} ({arch}): no sum for {url} in {source}")
            else:
                rows.append(row(url, algorithm, digest, cited))
    return rows, problems


def main(argv: list[str] | None = None) -> int:
    """Print the PINNED rows upstream publishes for the inventory's versions."""
    parser = argparse.ArgumentParser(prog="scripts/update-pins", description=__doc__)
    parser.add_argument("names", nargs="*", help="components (default: every default one)")
    parser.add_argument("-i", "--inventory", default=str(settings.PROJECT / "inventories/lab.py"))
    parser.add_argument("--arch", action="append", help="default: amd64 and arm64")
    parser.add_argument("--base", default=None, help="a mirror of upstream's URL layout "
                        f"(default ${upstream.BASE_ENV}, else upstream itself)")
    args = parser.parse_args(argv)
    versions = settings.versions(settings.group_data(Path(args.inventory)))
    names = args.names or [n for n, c in COMPONENTS.items()
                           if not c.optional and not c.debs and c.image != "busybox"]
    fetch = functools.cache(lambda url: _fetch(url, args.base))  # one CHANGELOG, many rows
    rows, problems = pins(names, versions, args.arch or ["amd64", "arm64"], fetch)
    if rows:
        print("\n".join(rows))
    for problem in problems:
        print(f"update-pins: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
