"""An OpenSSH client config for the inventory's hosts (verify reaches them with OpenSSH), built
only from validated values and refusing any that could add a line or an option."""

from __future__ import annotations

from kubesmith import rules
from kubesmith.errors import UserError

# pyinfra host data key -> OpenSSH option
OPTIONS = (("ssh_user", "User"), ("ssh_port", "Port"), ("ssh_key", "IdentityFile"),
           ("ssh_known_hosts_file", "UserKnownHostsFile"))


# OpenSSH's AES-GCM cipher, put at the head of its default list for bulk transfers where this
# machine's CPU has AES instructions: 500 MB to a lab host took 1.3-1.4 s with it, 1.7-1.9 s
# with the default first choice (chacha20-poly1305), both ends' CPU on this machine.
BULK_CIPHER = "aes128-gcm@openssh.com"


def bulk_options(cpuinfo: str) -> list[str]:
    """ssh options for a bulk transfer: AES-GCM preferred when cpuinfo's flags include aes
    (the rest of OpenSSH's default list after it), else OpenSSH's own order."""
    flags = {word for line in cpuinfo.splitlines()
             if line.split(":", 1)[0].strip() in ("flags", "Features")
             for word in line.split(":", 1)[-1].split()}
    return ["-o", f"Ciphers=^{BULK_CIPHER}"] if "aes" in flags else []


class UnsafeOption(UserError):
    """A value that would change the meaning of an OpenSSH config."""


def _value(host: str, option: str, value: object) -> str:
    """One option value: a single word without quotes, control characters or a leading '-'."""
    text = str(value)
    if (not text or text.startswith("-") or rules.control_char(text)
            or any(c.isspace() or c in "\"'\\#" for c in text)):
        raise UnsafeOption(rules.printable(f"{host}: {option} {text!r} is not a single plain "
                                           "word: refused in the OpenSSH config"))
    return text


def config(hosts: dict[str, dict[str, object]], connect_timeout: int) -> str:
    """Host blocks for each inventory host (strict host key checking, batch mode)."""
    blocks = []
    for name, data in hosts.items():
        lines = [f"Host {_value(name, 'Host', name)}",
                 f"  HostName {_value(name, 'HostName', data.get('ssh_hostname') or name)}",
                 "  BatchMode yes", f"  ConnectTimeout {int(connect_timeout)}",
                 "  LogLevel ERROR", "  StrictHostKeyChecking yes"]
        for key, option in OPTIONS:
            if data.get(key) is not None:
                lines.append(f"  {option} {_value(name, option, data[key])}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
