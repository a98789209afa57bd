"""The Go toolchain the build source needs: found on PATH and new enough, or one line saying what
to install and why (run as a module, scripts/setup.sh asks it which source to take)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from kubesmith.errors import UserError

# The newest `go` line among the go.mod files of the default versions (group_data/all.py):
# go.etcd.io/etcd/server/v3 v3.6.16 says `go 1.26.0` (k8s.io/kubernetes v1.34.4: 1.24.0).
# Builds run with GOTOOLCHAIN=local, so an older Go cannot build them. gobuild checks each
# module's own line too, for versions other than the defaults.
MIN_GO = "1.26.0"
INSTALL = "https://go.dev/dl/"


class GoMissing(UserError):
    """No Go toolchain new enough to build the pinned versions."""


def version_key(version: str) -> tuple[int, ...]:
    """1.26.0, go1.26.8 or go1.19 as a comparable tuple (missing parts are 0)."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def go_version() -> str | None:
    """The version of `go` on PATH (e.g. go1.26.8), None without one."""
    if shutil.which("go") is None:
        return None
    result = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def require(minimum: str = MIN_GO, what: str = "the pinned versions") -> None:
    """Raise GoMissing (one line: what to install and why) unless go ≥ minimum is on PATH."""
    found = go_version()
    if found is not None and version_key(found) >= version_key(minimum):
        return
    have = f"{found} on PATH is older" if found else "no go on PATH"
    raise GoMissing(f"building {what} from Go modules needs Go ≥ {minimum} ({have}; Debian 12's "
                    f"golang is 1.19): install Go ≥ {minimum} from {INSTALL} and put it on PATH, "
                    "or use `deploy.py binaries --source download` (upstream release files)")


def main() -> int:
    """Exit 0 when the build source can run here, else print why on one line and exit 1."""
    try:
        require()
    except GoMissing as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
