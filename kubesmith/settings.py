"""Read group_data defaults outside pyinfra (versions, networks, paths)."""

from __future__ import annotations

import runpy
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
GROUP_DATA = PROJECT / "group_data"


def group_data(group: str = "all") -> dict[str, object]:
    """The public names of a group_data file."""
    values = runpy.run_path(str(GROUP_DATA / f"{group}.py"))
    return {k: v for k, v in values.items() if not k.startswith("_")}


def versions() -> dict[str, str]:
    """Every pinned `*_version` from group_data/all.py."""
    return {k: str(v) for k, v in group_data().items() if k.endswith("_version")}
