"""A host's privilege escalation (sudo, su, doas) for every command and transfer: a workflow's
own commands as well as operations and facts, and transfers through a private directory."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pyinfra.api import State, StringCommand
from pyinfra.api.arguments import auth_argument_meta, pop_global_arguments
from pyinfra.api.host import Host as PyinfraHost

from kubesmith.errors import UserError

# What a command runs with as the login user (pyinfra's defaults: no escalation).
AS_LOGIN_USER: dict[str, object] = {"_sudo": False, "_su_user": None, "_doas": False,
                                    "_dzdo": False}
# A directory `mktemp -d` made (read back from the host: parsed like input).
_TEMP_DIR = re.compile(r"/[A-Za-z0-9_./-]+")

Method = Callable[..., Any]


def arguments(state: State, remote: PyinfraHost) -> dict[str, object]:
    """The privilege and environment arguments the host's inventory data gives its commands
    (pyinfra applies them to operations and facts, not to a connector's direct calls)."""
    found, _keys = pop_global_arguments(state, remote, {})
    return {key: found[key] for key in (*auth_argument_meta, "_env")}  # type: ignore[literal-required]


def escalates(given: dict[str, object]) -> bool:
    """Whether commands with these arguments run as another user than the login user."""
    return any(given.get(key) for key in AS_LOGIN_USER)


def commands(method: Method, given: dict[str, object]) -> Method:
    """A connector's run_shell_command that runs with the host's arguments unless the caller
    gave its own."""
    def run(*args: object, **kwargs: object) -> Any:
        return method(*args, **{**given, **kwargs})
    return run


def transfers(method: Method, run: Method, given: dict[str, object], host: str) -> Method:
    """A connector's put_file or get_file with the host's arguments. With escalation, pyinfra
    passes the file through a temporary copy in /tmp that the SFTP server creates with its
    umask (0644) under a name anyone can predict: the copy goes into a fresh `mktemp -d`
    directory (0700, the login user's) instead, removed afterwards whatever happened."""
    plain = commands(method, given)
    if not escalates(given):
        return plain

    def transfer(*args: object, **kwargs: object) -> Any:
        if kwargs.get("remote_temp_filename"):
            return plain(*args, **kwargs)
        ok, output = run(StringCommand("umask 077 && mktemp -d"), **AS_LOGIN_USER)
        directory = "\n".join(output.stdout_lines).strip()
        if not ok or not _TEMP_DIR.fullmatch(directory):
            raise UserError(f"{host}: could not make a private temporary directory as the "
                            f"login user (`mktemp -d`): {' '.join(output.stderr_lines)[-200:]}")
        try:
            return plain(*args, **{**kwargs, "remote_temp_filename": f"{directory}/transfer"})
        finally:
            run(StringCommand("rm", "-rf", directory), **AS_LOGIN_USER)
    return transfer
