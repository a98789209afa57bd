"""Hostile values (quotes, $(), backticks, newlines, spaces, ;, --flag) in every host and
group-data field: validation refuses each one, and — validation bypassed — no template and no
shell command kubesmith builds lets one add a line, a word, a flag or a command.

Templates are found by a glob and commands are recorded from the tasks themselves (every fact
probe and shell op of every phase), so a new template or task is covered without editing this.
Commands built outside the phases (etcd membership, readiness, kube-bench, journal, uploads)
are listed in OUTSIDE_PHASES.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from jinja2 import Environment, StrictUndefined

from kubesmith import backup as kubesmith_backup
from kubesmith import certificates, cis, encryption, inventory, membership, runner, settings
from kubesmith.addons import ADDONS
from kubesmith.binaries.images import image_ref
from kubesmith.context import TEMPLATES, DeployContext
from kubesmith.model import Host
from kubesmith.validate import check
from kubesmith.workflows import restore
from tasks import _ops, addons, backup, balancer, controlplane, etcd, flannel, mirror, reset

MARK = "PWNED"
PAYLOADS = (
    f"x'$(>{MARK})'y",  # breaks out of naive single quotes
    f'x"$(>{MARK})"y',  # breaks out of naive double quotes
    f"$(>{MARK})",
    f"`>{MARK}`",
    f"a\n>{MARK}",  # adds a line (a unit's ExecStartPre=, a shell command)
    f"a >{MARK}",  # adds a word (a flag in a unit, a redirection in a shell)
    f"a;>{MARK}",
    f"--{MARK}",  # a flag of its own
    f"x\\'{MARK}",
)
SSH = {"ssh_user": "root", "ssh_key": "/root/.ssh/id_ed25519",
       "ssh_known_hosts_file": "/root/.ssh/known_hosts"}
BASE = {"address": "192.0.2.10", "iface": "eth0", "ssh_hostname": "192.0.2.10", **SSH}
# Host data that reaches kubesmith's files and commands or pyinfra's connection.
HOST_FIELDS = ("name", "address", "iface", "ssh_hostname", "ssh_user", "ssh_key",
               "ssh_known_hosts_file", "_sudo_user", "_su_user")
DEFAULTS = settings.group_data()
# Every string setting of group_data/all.py: a new one is covered as soon as it exists.
DATA_FIELDS = tuple(k for k, v in DEFAULTS.items() if isinstance(v, str))
FIELDS = (*(f"host:{f}" for f in HOST_FIELDS), *(f"data:{f}" for f in DATA_FIELDS))


def _inventory(field: str, value: str) -> tuple[inventory.Groups, dict[str, object]]:
    """m1 (etcd, master and node) and n1 (node), with one field of m1 or one setting set."""
    data = dict(DEFAULTS)
    m1 = dict(BASE)
    name = "m1"
    kind, key = field.split(":")
    if kind == "data":
        data[key] = value
    elif key == "name":
        name = value
    else:
        m1[key] = value
    entry = (name, m1)
    node = ("n1", {**BASE, "address": "192.0.2.21", "ssh_hostname": "192.0.2.21"})
    return {"etcd": [entry], "masters": [entry], "nodes": [entry, node]}, data


def _ctx(field: str, value: str, state: Path) -> DeployContext:
    """A context built from a hostile inventory with validation bypassed (defence in depth)."""
    groups, data = _inventory(field, value)
    ctx = DeployContext(inventory.to_cluster(groups, data), data, state, groups)
    ctx.dry = True  # no PKI or binary cache needed to build every file and command
    return ctx


def _benign(field: str) -> str:
    """The field's valid value, to compare a hostile build with."""
    kind, key = field.split(":")
    if kind == "data":
        return str(DEFAULTS[key])
    return "m1" if key == "name" else str(BASE.get(key, "kube"))


@pytest.mark.parametrize("field", FIELDS)
def test_validation_refuses_every_payload_naming_host_and_key(field: str) -> None:
    kind, key = field.split(":")
    for payload in PAYLOADS:
        groups, data = _inventory(field, payload)
        errors = [str(p) for p in check(groups, data) if p.level == "error"]
        if kind == "data":
            subject = f"error: {key}: "
        elif key == "name":
            subject = f"error: {payload!r}: host name "
        else:
            subject = f"error: m1: {key} "
        assert any(line.startswith(subject.replace("\n", "\\n")) for line in errors), \
            f"{field}={payload!r} not refused: {errors}"
        assert all("\n" not in line for line in errors)


# --- shell commands ---------------------------------------------------------------------------

def skeleton(command: str) -> list[str]:
    """A command's shell structure: each word (quoted parts included) becomes W; operators,
    redirections, unquoted blanks and substitutions ($, ` also inside "...") stay as they are;
    comments go.
    A hostile value quoted with shlex.quote leaves the structure of the benign command."""
    out: list[str] = []
    index = 0
    while index < len(command):
        char = command[index]
        if char == "#" and (index == 0 or command[index - 1] in " \t\n;&|()"):
            end = command.find("\n", index)
            index = len(command) if end < 0 else end  # a comment: up to the end of its line
        elif char == "'":
            end = command.find("'", index + 1)
            if end < 0:
                return ["unbalanced '"]
            out.append("W")
            index = end + 1
        elif char == '"':
            index += 1
            while index < len(command) and command[index] != '"':
                if command[index] in "$`":
                    out.append(command[index])
                index += 2 if command[index] == "\\" else 1
            out.append("W")
            index += 1
        elif char == "\\" or char.isalnum() or char in "_./:=,%+@-~":
            out.append("W")
            index += 2 if char == "\\" else 1
        else:
            out.append(char)
            index += 1
    return [t for i, t in enumerate(out) if not (t == "W" and i and out[i - 1] == "W")]


def test_skeleton_sees_a_breakout() -> None:
    value = f"x'$(>{MARK})'y"
    assert skeleton(f"cat {shlex.quote(value)}") == skeleton("cat /etc/x")
    assert skeleton(f"cat '{value}'") != skeleton("cat '/etc/x'")
    assert skeleton(f'cat "{shlex.quote(value)}"') != skeleton('cat "/etc/x"')
    assert skeleton(f"cat {'a b'}") != skeleton("cat ab")


def _lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render templates without their refusal of unsafe values: the shell layer alone is tested."""
    lenient = Environment(loader=_ops._JINJA.loader, undefined=StrictUndefined,
                          keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    lenient.filters["quote"] = lambda value: shlex.quote(str(value))
    monkeypatch.setattr(_ops, "_JINJA", lenient)


OUTSIDE_PHASES: dict[str, Callable[[DeployContext, Host], list[str]]] = {
    "etcd health": lambda ctx, me: [etcd.health_command(ctx)],
    "etcd member add": lambda ctx, me: [membership.add_command(ctx, me)],
    "etcd member remove/promote": lambda ctx, me: [
        etcd.etcdctl(ctx, etcd.quoted("member", verb, "8e9e05c52164694d"))
        for verb in ("remove", "promote")],
    "flannel leases": lambda ctx, me: [
        etcd.etcdctl(ctx, membership.leases_args(ctx)),
        etcd.etcdctl(ctx, etcd.quoted("del", f"{ctx.data['flannel_etcd_prefix']}/subnets/"
                                              "10.200.7.0-24"))],
    "apiserver readyz": lambda ctx, me: [controlplane.readyz_command(ctx)],
    "kube-bench": lambda ctx, me: [cis.bench_command(
        list(cis.targets(ctx.cluster, me)), f"{ctx.data['kube_config_dir']}/kubesmith.kubeconfig")],
    "journal": lambda ctx, me: [runner.journal_command(s) for s in ("etcd", "kubelet")],
    "backup": lambda ctx, me: list(kubesmith_backup.save_commands(
        ctx, f"{kubesmith_backup.REMOTE_DIR}/etcd-c-20260101T000000000Z.db").values()),
    "restore": lambda ctx, me: [restore.restore_command(ctx, me, "0" * 64, "20260101T000000Z")],
    "secret upload": lambda ctx, me: [c for c in _ops.write_commands([_ops.Item(
        "key", f"{ctx.data['pki_dir']}/kubelet-{me.name}.key", "600", src="/x")])
        if isinstance(c, str)],
}


def _commands(ctx: DeployContext, run_tasks) -> tuple[dict, dict]:
    """Every command of every task (per task) and of OUTSIDE_PHASES; and the refused tasks."""
    recording = run_tasks(ctx)
    found = dict(recording.commands)
    me = ctx.cluster.etcd[0]
    for what, build in OUTSIDE_PHASES.items():
        found[("outside", me.name, what)] = build(ctx, me)
    return found, recording.refused


@pytest.mark.parametrize("field", FIELDS)
def test_every_shell_command_quotes_every_payload(field: str, tmp_path: Path, empty_cache: Path,
                                                   run_tasks, monkeypatch) -> None:
    _lenient(monkeypatch)
    benign, refused = _commands(_ctx(field, _benign(field), tmp_path / "state"), run_tasks)
    assert not refused and sum(map(len, benign.values())) > 60
    for payload in PAYLOADS:
        hostile, refused = _commands(_ctx(field, payload, tmp_path / "state"), run_tasks)
        name = payload if field == "host:name" else "m1"
        for (phase, host, task), commands in hostile.items():
            if (phase, host, task) in refused:
                continue  # the task refused the value itself (e.g. a certificate's IP)
            wanted = benign[(phase, "m1" if host == name else host, task)]
            assert len(commands) == len(wanted), (phase, host, task)
            for command, good in zip(commands, wanted, strict=True):
                assert skeleton(command) == skeleton(good), (
                    f"{field}={payload!r} changes the shell structure of {task} on {host}:\n"
                    f"{command}")


# --- templates --------------------------------------------------------------------------------

JINJA_TEMPLATES = sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.glob("**/*.j2"))
SHELL_FILES = ("reset.sh.j2", "etcdctl.env.j2", "etcd-backup.sh.j2")  # run or sourced by sh


def _manifest(ctx: DeployContext) -> list[tuple[str, str]]:
    """Manifest entries as the tasks record them from the settings (reset renders from them)."""
    bin_dir = str(ctx.data["bin_dir"])
    return [*(("dir", str(v)) for k, v in ctx.data.items() if k.endswith("_dir")),
            ("file", f"{bin_dir}/crictl"), ("file", f"{bin_dir}/ctr"),
            ("file", f"{ctx.data['kube_config_dir']}/kubelet.kubeconfig"),
            ("file", "/etc/systemd/system/kubelet.service"), ("link", "cni0"),
            ("chain", "KUBE-"), ("user", "etcd"), ("package", "haproxy"),
            ("slice", "kubepods.slice")]


def template_values(ctx: DeployContext, me: Host) -> dict[str, object]:
    """Every value any template uses, as the tasks compute them from the inventory."""
    return {
        **ctx.values(me), **reset.values(_manifest(ctx)),
        "pause_image": image_ref("pause", str(ctx.data["pause_version"])),
        "keys": [encryption.Key("key1", "secretbox",
                                "c2VjcmV0IG9mIHRoaXJ0eS10d28gYnl0ZXMgaGVyZSE=")],
        "initial_cluster": ctx.cluster.etcd_initial_cluster, "initial_cluster_state": "new",
        "benchmark": cis.BENCHMARK, "server": ctx.cluster.apiserver_url,
        "kube_user": f"system:node:{me.name}", "cert": f"kubelet-{me.name}",
        "ca_data": "", "cert_data": "", "key_data": "", "resolv_conf": "/etc/resolv.conf",
        "etcd_peer_cn": certificates.ETCD_PEER_CN, "admin_group": certificates.ADMIN_GROUP,
        "kubesmith_user": certificates.KUBESMITH_USER, **addons.values(ctx, ADDONS["coredns"]),
        **balancer.values(ctx, me), **backup.values(ctx, me, "daily", 7),
        **mirror.values(ctx), **flannel.unit_values(ctx, me), "subnet_len": flannel.SUBNET_LEN,
    }


def _structure(value: object) -> object:
    """The keys of a parsed document, recursively (values left out)."""
    if isinstance(value, dict):
        return {k: _structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_structure(v) for v in value]
    return None


def _render(template: str, field: str, value: str, state: Path) -> str:
    ctx = _ctx(field, value, state)
    return _ops.render(template, **template_values(ctx, ctx.cluster.etcd[0]))


@pytest.mark.parametrize("template", JINJA_TEMPLATES)
def test_every_template_refuses_or_contains_every_payload(template: str, tmp_path: Path) -> None:
    for field in FIELDS:
        benign = _render(template, field, _benign(field), tmp_path)
        for payload in PAYLOADS:
            try:
                text = _render(template, field, payload, tmp_path)
            except _ops.UnsafeValue:
                continue  # refused: the value would add a line, or a word to a unit
            if text == benign:
                continue  # the template does not use this field
            where = f"{template} with {field}={payload!r}"
            assert text.count("\n") == benign.count("\n"), f"{where}: lines added"
            assert not template.endswith(_ops.SYSTEMD_TEMPLATES) or " " not in payload, where
            if template.endswith(SHELL_FILES):
                assert skeleton(text) == skeleton(benign), f"{where}: shell structure changed"
            if template.endswith((".json.j2", ".conflist.j2")):
                assert _structure(json.loads(text)) == _structure(json.loads(benign)), where
            if template.endswith(".toml.j2"):
                assert _structure(tomllib.loads(text)) == _structure(tomllib.loads(benign)), \
                    where


def test_unit_values_are_refused_with_a_message_naming_the_template() -> None:
    with pytest.raises(_ops.UnsafeValue) as raised:
        _ops.render("flannel/flanneld.service.j2", **{
            "bin_dir": "/usr/local/bin", "etcd_endpoints": "https://192.0.2.10:2379",
            "flannel_etcd_prefix": "/coreos.com/network", "pki_dir": "/etc/kubernetes/pki",
            "iface": "eth0 --etcd-endpoints=http://evil:2379", "address": "192.0.2.10",
            "host_name": "n1", "subnet_seed": None})
    assert str(raised.value) == ("flannel/flanneld.service.j2: value 'eth0 --etcd-endpoints="
                                 "http://evil:2379' contains ' ', which systemd would split or "
                                 "interpret: refused")
    with pytest.raises(_ops.UnsafeValue, match=r"control character '\\n'"):
        _ops.render("kubeconfig/kubeconfig.j2", server="https://a\nb", kube_user="x", cert="c",
                    pki_dir="/p", ca_data="", cert_data="", key_data="")


# --- YAML: strings stay strings -------------------------------------------------------------
# A valid node name or cluster_domain may be a YAML 1.1 bool, null or number when unquoted
# (yes, off, on, null, 0x10, 1e3): the YAML templates render user strings with `| tojson`, and
# a JSON string is a YAML double-quoted string.

YAML_LIKE = ("yes", "off", "on", "null", "true", "0x10", "1e3", "0o17", "1_000", ".inf", "m1")
# The rendered lines holding a user string, per template: key -> the value it must read as.
YAML_STRINGS = {
    "node/kube-proxy-config.yaml.j2": lambda name, d: {
        "kubeconfig": f"{d['kube_config_dir']}/kube-proxy.kubeconfig",
        "clusterCIDR": d["pod_cidr"], "hostnameOverride": name},
    "node/kubelet-config.yaml.j2": lambda name, d: {
        "clientCAFile": f"{d['pki_dir']}/kubernetes-ca.crt", "- ": d["cluster_dns"],
        "clusterDomain": d["cluster_domain"], "resolvConf": "/etc/resolv.conf",
        "tlsCertFile": f"{d['pki_dir']}/kubelet-{name}.crt",
        "tlsPrivateKeyFile": f"{d['pki_dir']}/kubelet-{name}.key"},
}


def _yaml_render(template: str, name: str, domain: str = "cluster.local") -> tuple[str, dict]:
    data = {**DEFAULTS, "cluster_domain": domain}
    text = _ops.render(template, **data, host_name=name, resolv_conf="/etc/resolv.conf")
    return text, data


@pytest.mark.parametrize("template", sorted(YAML_STRINGS))
@pytest.mark.parametrize("name", YAML_LIKE)
def test_yaml_templates_render_user_strings_as_json_strings(template: str, name: str) -> None:
    text, data = _yaml_render(template, name, domain=name)
    wanted = YAML_STRINGS[template](name, data)
    found = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(": ") if not line.strip().startswith("- ") \
            else ("- ", " ", line.strip()[2:])
        if sep and key in wanted:
            assert value.startswith('"'), f"{template}: {line!r} is not a quoted string"
            found[key] = json.loads(value)
    assert found == wanted


def test_every_yaml_template_with_user_strings_is_listed() -> None:
    # A YAML template naming host_name or cluster_domain must render them quoted (listed above).
    for path in TEMPLATES.glob("**/*.yaml.j2"):
        text = path.read_text()
        name = str(path.relative_to(TEMPLATES))
        if any(f"{{{{ {key} }}}}" in line and not line.lstrip().startswith("#")
               and not line.startswith(" " * 8)  # inside a block scalar (CoreDNS's Corefile)
               for line in text.splitlines() for key in ("host_name", "cluster_domain")):
            assert name in YAML_STRINGS, f"{name} renders a user string unquoted"


YAML_MEANING = {
    "node/kube-proxy-config.yaml.j2": lambda name, domain: {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": "/etc/kubernetes/kube-proxy.kubeconfig"},
        "mode": "iptables", "clusterCIDR": "10.200.0.0/16", "hostnameOverride": name,
        "conntrack": {"maxPerCore": 0}},
    "node/kubelet-config.yaml.j2": lambda name, domain: {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": "/etc/kubernetes/pki/kubernetes-ca.crt"}},
        "authorization": {"mode": "Webhook"}, "cgroupDriver": "systemd",
        "clusterDNS": ["10.32.0.10"], "clusterDomain": domain, "resolvConf": "/etc/resolv.conf",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "failCgroupV1": False, "failSwapOn": False,
        "tlsCertFile": f"/etc/kubernetes/pki/kubelet-{name}.crt",
        "tlsPrivateKeyFile": f"/etc/kubernetes/pki/kubelet-{name}.key",
        "tlsMinVersion": "VersionTLS12", "rotateCertificates": False,
        "serverTLSBootstrap": False, "readOnlyPort": 0, "makeIPTablesUtilChains": True,
        "eventRecordQPS": 5, "imageGCHighThresholdPercent": 100,
        "evictionHard": {"nodefs.available": "0%", "nodefs.inodesFree": "0%",
                         "imagefs.available": "0%"}},
}


def test_yaml_templates_mean_what_they_say() -> None:
    # Parsed as YAML 1.1 (PyYAML; Go's sigs.k8s.io/yaml reads yes/on/0x10 alike): the default
    # values mean what they did unquoted, and YAML-like names stay strings.
    yaml = pytest.importorskip("yaml")
    for template, meaning in YAML_MEANING.items():
        for name, domain in (("m1", "cluster.local"), ("yes", "on"), ("0x10", "1e3"),
                             ("off", "null")):
            text, _data = _yaml_render(template, name, domain)
            assert yaml.safe_load(text) == meaning(name, domain), (template, name, domain)
