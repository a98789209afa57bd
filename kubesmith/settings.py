"""Group data outside pyinfra: the defaults of group_data/all.py, overridden per inventory."""

from __future__ import annotations

import inspect
import runpy
from pathlib import Path

from kubesmith.errors import UserError
from kubesmith.rules import printable

PROJECT = Path(__file__).resolve().parent.parent
GROUP_DATA = PROJECT / "group_data"


class SettingsError(UserError):
    """A group data file that cannot be loaded."""


def _run(path: Path) -> dict[str, object]:
    """The names a group data file defines (user code: an error is reported as one line)."""
    try:
        return runpy.run_path(str(path))
    except (Exception, SystemExit) as error:
        raise SettingsError(printable(f"group data {path}: {type(error).__name__}: {error}")
                            ) from error


def _public(path: Path) -> dict[str, object]:
    """The public names a group data file defines."""
    return {k: v for k, v in _run(path).items() if not k.startswith("_") and k != "annotations"}


def group_data(inventory: Path | None = None) -> dict[str, object]:
    """Settings for an inventory: group_data/all.py, then (pyinfra's way) the `group_data/all.py`
    beside the inventory file, when there is one, overriding it key by key."""
    data = _public(GROUP_DATA / "all.py")
    if inventory is not None:
        beside = Path(inventory).resolve().parent / "group_data" / "all.py"
        if beside.exists() and beside != (GROUP_DATA / "all.py").resolve():
            data.update(_public(beside))
    return data


def group_files(inventory: Path) -> dict[str, dict[str, object]]:
    """The data of each group but `all` from its `group_data/<group>.py`, the project's then the
    one beside the inventory key by key, as pyinfra's CLI reads them (names not starting with
    `__`; modules, classes and functions left out)."""
    found: dict[str, dict[str, object]] = {}
    beside = Path(inventory).resolve().parent / "group_data"
    for directory in dict.fromkeys((GROUP_DATA.resolve(), beside)):
        for path in sorted(directory.glob("*.py")):
            if path.stem != "all":
                found.setdefault(path.stem, {}).update(_group_file(path))
    return found


def _group_file(path: Path) -> dict[str, object]:
    """The values a group's data file defines (pyinfra's `_sudo` and the like included)."""
    return {k: v for k, v in _run(path).items() if not k.startswith("__") and not (
        inspect.ismodule(v) or inspect.isclass(v) or inspect.isroutine(v))}


def versions(data: dict[str, object] | None = None) -> dict[str, str]:
    """Every pinned `*_version` of the settings (the defaults when none are given)."""
    return {k: str(v) for k, v in (data or group_data()).items() if k.endswith("_version")}
