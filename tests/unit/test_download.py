"""The download source against a local HTTP mirror of upstream's URL layout: it fills the cache,
refuses a file whose sum differs or has none pinned; and the real pin table's format and
citations. (Upstream's servers are unreachable here: the pins of these tests are made for the
test files; the real table is checked separately.)"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kubesmith import cli, settings
from kubesmith.binaries import cache, pins, upstream
from kubesmith.binaries.recipes import COMPONENTS, K8S_BINARIES

VERSIONS = settings.versions(settings.group_data(cli.DEFAULT_INVENTORY))
# An excerpt of the real file: k8s.io/kubernetes@v1.34.7 CHANGELOG/CHANGELOG-1.34.md, lines
# 325-517 (the v1.34.5 and v1.34.4 sections).
CHANGELOG = Path(__file__).parent / "data/CHANGELOG-1.34-v1.34.4.md"
PAUSE_C = Path.home() / "go/pkg/mod" / f"k8s.io/kubernetes@{VERSIONS['kubernetes_version']}" \
    / "build/pause/linux/pause.c"


class Mirror:
    """A directory served over HTTP at base, in upstream's layout (<base>/<host>/<path>)."""

    def __init__(self, root: Path, base: str, requests: list[str]) -> None:
        self.root, self.base, self.requests = root, base, requests

    def put(self, url: str, data: bytes) -> None:
        """Serve data where upstream serves url."""
        parts = urlsplit(url)
        path = self.root / parts.netloc / parts.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    """A local HTTP server (python http.server) recording every path it is asked for."""
    root = tmp_path / "mirror"
    root.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Mirror(root, f"http://127.0.0.1:{server.server_port}", requests)
    finally:
        server.shutdown()
        server.server_close()


def _targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _url(name: str) -> str:
    return upstream._layout(name, VERSIONS, "amd64")[0][0]


def _publish(mirror: Mirror, files: dict[str, bytes]) -> dict[str, str]:
    """Serve files (upstream URL -> bytes); the pins a release would publish for them."""
    for url, data in files.items():
        mirror.put(url, data)
    return {url: "sha512:" + hashlib.sha512(data).hexdigest() for url, data in files.items()}


def _binaries(mirror: Mirror, cache_root: Path, *names: str) -> int:
    return cli.main(["binaries", *names, "--source", "download", "--cache", str(cache_root),
                     "--arch", "amd64", "--download-base", mirror.base])


def test_download_fills_the_cache_from_a_mirror(mirror: Mirror, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if not PAUSE_C.exists() or shutil.which("gcc") is None:
        pytest.skip(f"needs {PAUSE_C} (go mod download k8s.io/kubernetes) and gcc")
    server = {f"kubernetes/server/bin/{b}": f"{b} release binary".encode() for b in K8S_BINARIES}
    server["kubernetes/server/bin/kubeadm"] = b"not taken"
    files = {
        _url("kubernetes"): _targz(server),
        _url("crictl"): _targz({"crictl": b"crictl release binary"}),
        _url("pause-image"): _targz({"build/pause/linux/pause.c": PAUSE_C.read_bytes()}),
        _url("coredns"): _targz({"coredns": b"coredns release binary"}),
    }
    monkeypatch.setattr(upstream, "PINNED", _publish(mirror, files))
    assert _binaries(mirror, tmp_path / "cache", "kubernetes", "crictl", "pause-image",
                     "coredns") == 0
    k8s = VERSIONS["kubernetes_version"]
    # The URLs the Kubernetes CHANGELOG lists (https://dl.k8s.io/<version>/<file>).
    assert f"/dl.k8s.io/{k8s}/kubernetes-server-linux-amd64.tar.gz" in " ".join(mirror.requests)
    assert f"/dl.k8s.io/{k8s}/kubernetes-src.tar.gz" in " ".join(mirror.requests)
    final = cache.component_dir(tmp_path / "cache", "kubernetes", k8s, "amd64")
    assert (final / "kube-apiserver").read_bytes() == b"kube-apiserver release binary"
    assert sorted(p.name for p in final.iterdir()) == sorted([*K8S_BINARIES, cache.MANIFEST])
    assert cache.is_complete(final, K8S_BINARIES)
    crictl = cache.component_dir(tmp_path / "cache", "crictl", VERSIONS["crictl_version"], "amd64")
    assert (crictl / "crictl").stat().st_mode & 0o777 == 0o755
    pause = cache.component_dir(tmp_path / "cache", "pause-image", VERSIONS["pause_version"],
                                "amd64")
    with tarfile.open(pause / "pause.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [f"registry.k8s.io/pause:{VERSIONS['pause_version']}"]
    assert sorted(p.name for p in pause.iterdir()) == ["SHA256SUMS", "pause.tar"]
    coredns = cache.component_dir(tmp_path / "cache", "coredns", VERSIONS["coredns_version"],
                                  "amd64")
    with tarfile.open(coredns / "coredns.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = archive.extractfile(manifest[0]["Layers"][0])
        with tarfile.open(fileobj=layer) as inner:
            binary = inner.extractfile("coredns")
            assert binary is not None and binary.read() == b"coredns release binary"
    assert manifest[0]["RepoTags"] == [f"kubesmith.local/coredns:{VERSIONS['coredns_version']}"]
    err = capsys.readouterr().err
    assert "binaries: kubernetes v1.34.4 (amd64) from download" in err
    assert re.search(r"binaries: kubernetes v1\.34\.4 \(amd64\) ready in \d+ s", err)


def test_a_file_whose_sum_differs_is_refused(mirror: Mirror, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = _url("crictl")
    published = _publish(mirror, {url: _targz({"crictl": b"crictl release binary"})})
    monkeypatch.setattr(upstream, "PINNED", published)
    tampered = _targz({"crictl": b"something else"})
    mirror.put(url, tampered)
    assert _binaries(mirror, tmp_path / "cache", "crictl") == 1
    err = capsys.readouterr().err.strip().splitlines()
    actual = hashlib.sha512(tampered).hexdigest()
    assert err[-1] == (f"error: checksum mismatch for {url}: expected sha512 "
                       f"{published[url].removeprefix('sha512:')}, got {actual}")
    assert not cache.component_dir(tmp_path / "cache", "crictl", VERSIONS["crictl_version"],
                                   "amd64").exists()
    assert not list((tmp_path / "cache").rglob(".staging-*"))


def test_a_file_without_a_pinned_sum_is_never_fetched(mirror: Mirror, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    published = _publish(mirror, {_url("crictl"): _targz({"crictl": b"crictl"})})
    mirror.put(_url("etcd"), b"an etcd release")
    monkeypatch.setattr(upstream, "PINNED", published)
    assert _binaries(mirror, tmp_path / "cache", "crictl", "etcd", "metrics-server") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: binaries --source download: no published sum is pinned for "
                          "etcd, metrics-server (amd64)")
    assert "--source build" in err
    assert mirror.requests == []  # refused before anything was fetched
    assert not (tmp_path / "cache").exists()


def test_debian_packages_need_no_pin() -> None:
    assert upstream.unpinned(["haproxy", "busybox-image", "etcd"], VERSIONS, "amd64",
                             pinned={}) == ["etcd"]


def test_mirror_url_keeps_upstream_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://dl.k8s.io/v1.34.4/kubernetes-src.tar.gz"
    monkeypatch.delenv(upstream.BASE_ENV, raising=False)
    assert upstream.mirror_url(url) == url
    monkeypatch.setenv(upstream.BASE_ENV, "http://mirror.example:8080/up/")
    assert upstream.mirror_url(url) == "http://mirror.example:8080/up/dl.k8s.io/v1.34.4/" \
                                       "kubernetes-src.tar.gz"


def test_pinned_table_format_and_citations() -> None:
    """Every real pin: a URL the layout produces, a sum of the right length, and a comment
    citing where it was read (a Go module version or URL, and a line)."""
    assert upstream.PINNED, "the download path pins at least the Kubernetes tarballs"
    layout = {upstream._layout(name, VERSIONS, arch)[0][0]
              for name in ("kubernetes", "pause-image", "crictl", "cni-plugins", "flannel-cni")
              for arch in ("amd64", "arm64")}
    for url, digest in upstream.PINNED.items():
        algorithm, _, hexdigest = digest.partition(":")
        assert upstream.ALGORITHMS.get(algorithm) == len(hexdigest), url
        assert re.fullmatch(r"[0-9a-f]+", hexdigest), url
        assert url in layout, f"{url}: not a URL the download path fetches"
    source = Path(upstream.__file__).read_text()
    table = source[source.index("PINNED: dict"):source.index("\n}\n")]
    comment = ""
    for line in table.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            comment += stripped
        elif stripped.startswith('f"'):
            module = "k8s.io/kubernetes@v" in comment and "line" in comment
            assert module or "Same file, line" in comment or "https://" in comment, \
                f"no citation before {stripped}"
            comment = ""


def test_kubernetes_pins_match_the_changelog_rows() -> None:
    """The rows of the real CHANGELOG parse into the pinned sums, v1.34.4's only."""
    rows = pins.changelog_sums(CHANGELOG.read_text(), "v1.34.4")
    for url in (_url("kubernetes"), _url("pause-image"),
                upstream._layout("kubernetes", VERSIONS, "arm64")[0][0]):
        assert "sha512:" + rows[url] == upstream.PINNED[url]
    assert len(rows) == 22  # 2 source, 11 client, 4 server, 5 node tarballs


def test_layout_is_refused_for_images_upstream_ships_only_to_registries() -> None:
    with pytest.raises(upstream.NotPinned, match="metrics-server v0.8.0: upstream publishes no "
                                                 "release file"):
        upstream.artifacts("metrics-server", VERSIONS, "amd64", pinned={})


def test_every_default_component_is_listed_by_the_refusal() -> None:
    """What the download path cannot provide today (the report's list)."""
    names = [n for n, c in COMPONENTS.items() if not c.optional]
    assert upstream.unpinned(names, VERSIONS, "amd64") == [
        "etcd", "flannel", "containerd", "runc", "kube-bench", "coredns", "metrics-server"]


def test_gcc_compiles_the_pause_image_without_go(tmp_path: Path) -> None:
    if not PAUSE_C.exists() or shutil.which("gcc") is None:
        pytest.skip(f"needs {PAUSE_C} and gcc")
    from kubesmith.binaries import images

    images.pause_image(PAUSE_C, "3.10.1", tmp_path)
    with tarfile.open(tmp_path / "pause.tar") as archive:
        layer = next(m for m in archive.getnames() if m.endswith("layer.tar"))
        with tarfile.open(fileobj=archive.extractfile(layer)) as inner:  # type: ignore[arg-type]
            binary = inner.extractfile("pause").read()  # type: ignore[union-attr]
    (tmp_path / "pause").write_bytes(binary)
    (tmp_path / "pause").chmod(0o755)
    version = subprocess.run([str(tmp_path / "pause"), "-v"], capture_output=True, text=True,
                             timeout=10, check=False)
    assert version.stdout.strip() == "pause.c v3.10.1"


def test_update_pins_prints_the_published_rows(mirror: Mirror,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/update-pins against a mirror serving the real CHANGELOG and a sha256sum-format
    file: the rows it prints are the pinned ones, citing their source; a missing sum file is
    reported, not guessed."""
    source = pins.CHANGELOG.format(minor="1.34")
    mirror.put(source, CHANGELOG.read_bytes())
    crictl = _url("crictl")
    mirror.put(f"{crictl}.sha256", f"{'ab' * 32}  {crictl.rsplit('/', 1)[-1]}\n".encode())
    code = pins.main(["kubernetes", "pause-image", "crictl", "etcd", "flannel", "--arch", "amd64",
                      "--base", mirror.base])
    out, err = capsys.readouterr()
    table: dict[str, str] = eval("{" + out + "}")  # the rows are Python, as pasted into the table
    k8s = _url("kubernetes")
    assert table[k8s] == upstream.PINNED[k8s]
    assert table[_url("pause-image")] == upstream.PINNED[_url("pause-image")]
    assert table[crictl] == "sha256:" + "ab" * 32
    assert f"# {source}, \"Downloads for v1.34.4\"" in out
    assert code == 1
    assert "update-pins: etcd (amd64): " in err and "SHA256SUMS" in err
    assert "update-pins: flannel: its release publishes no sum file" in err


@pytest.mark.parametrize(("text", "expected"), [
    (f"{'a' * 64}  crictl.tgz\n", "a" * 64),
    (f"{'b' * 64} *dir/crictl.tgz\n{'c' * 64}  other.tgz\n", "b" * 64),
    (f"{'d' * 64}\n", "d" * 64),
    (f"{'e' * 64}  other.tgz\n", None),
    (f"{'f' * 63}  crictl.tgz\n", None),
])
def test_sum_file_formats(text: str, expected: str | None) -> None:
    assert pins.sum_file_entry(text, "crictl.tgz", "sha256") == expected
