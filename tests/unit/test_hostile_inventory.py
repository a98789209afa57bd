"""A catalogue of hostile or malformed inventories and settings: each is refused before any host
or local state is touched, with one line naming the host or key and the rule, never a traceback.
A few go through `deploy.py up -i FILE` as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubesmith import context, settings
from kubesmith.inventory import Groups
from kubesmith.validate import ValidationError

NAME = "node-1"
LONG = "a." * 130 + "a"
SSH = {"ssh_user": "root", "ssh_key": "~/.ssh/id_ed25519"}
MAIN_DNS = ("is not a DNS name: use lowercase labels of letters, digits and '-' (at most 63 "
            "each) joined by dots, e.g. cluster.local")

# (what, node-1's name, node-1's host data (None removes a key), settings, the one error line)
CATALOGUE = [
    ('uppercase name', 'Node1', {}, {},
     "error: 'Node1': host name has uppercase letters: use lowercase (a Kubernetes node "
     'name: a DNS-1123 subdomain, FQDNs allowed)'),
    ('underscore name', 'node_1', {}, {},
     "error: 'node_1': host name has the character '_': use a-z, 0-9, '-' and '.' (a "
     'Kubernetes node name: a DNS-1123 subdomain, FQDNs allowed)'),
    ('flag as name', '--all', {}, {},
     "error: '--all': host name has the label '--all': labels start and end with a letter or "
     'digit (a Kubernetes node name: a DNS-1123 subdomain, FQDNs allowed)'),
    ('empty name', '', {}, {},
     "error: '': host name is empty (a Kubernetes node name: a DNS-1123 subdomain, FQDNs "
     'allowed)'),
    ('non-ASCII name', 'nöde', {}, {},
     "error: 'nöde': host name has the character 'ö': use a-z, 0-9, '-' and '.' (a "
     'Kubernetes node name: a DNS-1123 subdomain, FQDNs allowed)'),
    ('70-character label', "a" * 70, {}, {},
     "error: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa': host "
     'name has a label of 70 characters: at most 63 (a Kubernetes node name: a DNS-1123 '
     'subdomain, FQDNs allowed)'),
    ('name over 253', LONG, {}, {},
     f"error: {LONG!r}: host name is 261 characters long: at most 253 (a Kubernetes node "
     'name: a DNS-1123 subdomain, FQDNs allowed)'),
    ('trailing dot', 'node-1.', {}, {},
     "error: 'node-1.': host name has an empty label (a leading, trailing or double '.') (a "
     'Kubernetes node name: a DNS-1123 subdomain, FQDNs allowed)'),
    ('space in name', 'node 1', {}, {},
     "error: 'node 1': host name has the character ' ': use a-z, 0-9, '-' and '.' (a "
     'Kubernetes node name: a DNS-1123 subdomain, FQDNs allowed)'),
    ('quote breakout in name', "n1'$(reboot)'", {}, {},
     'error: "n1\'$(reboot)\'": host name has the character "\'": use a-z, 0-9, \'-\' and '
     "'.' (a Kubernetes node name: a DNS-1123 subdomain, FQDNs allowed)"),
    ('newline in name', 'node\n1', {}, {},
     "error: 'node\\n1': host name has the character '\\n': use a-z, 0-9, '-' and '.' (a "
     'Kubernetes node name: a DNS-1123 subdomain, FQDNs allowed)'),
    ('IPv6 with scope id', NAME, {'address': 'fe80::1%eth0'}, {},
     "error: node-1: address 'fe80::1%eth0' is IPv6: IPv6 is not supported yet: use the "
     "host's IPv4 address"),
    ('IPv6', NAME, {'address': '2001:db8::1'}, {},
     "error: node-1: address '2001:db8::1' is IPv6: IPv6 is not supported yet: use the "
     "host's IPv4 address"),
    ('loopback address', NAME, {'address': '127.0.0.1'}, {},
     "error: node-1: address '127.0.0.1' is not a host's address (loopback): use the IP the "
     'other hosts reach it at'),
    ('unspecified address', NAME, {'address': '0.0.0.0'}, {},
     "error: node-1: address '0.0.0.0' is not a host's address (unspecified): use the IP the "
     'other hosts reach it at'),
    ('multicast address', NAME, {'address': '224.0.0.1'}, {},
     "error: node-1: address '224.0.0.1' is not a host's address (multicast): use the IP the "
     'other hosts reach it at'),
    ('link-local address', NAME, {'address': '169.254.1.1'}, {},
     "error: node-1: address '169.254.1.1' is not a host's address (link-local): use the IP "
     'the other hosts reach it at'),
    ('flag after address', NAME, {'address': '10.0.0.1 --x'}, {},
     "error: node-1: address '10.0.0.1 --x' is not an IP: set the host's IP"),
    ('no IP anywhere', NAME, {'address': None}, {},
     'error: node-1: no IP address: set `address` to the IP the other hosts reach it at '
     '(neither ssh_hostname nor the name is an IP)'),
    ('loopback ssh_hostname as address', NAME, {'address': None, 'ssh_hostname': '127.0.0.1'}, {},
     "error: node-1: address '127.0.0.1' (from ssh_hostname) is not a host's address "
     '(loopback): use the IP the other hosts reach it at'),
    ('flag in iface', NAME, {'iface': 'eth0 --etcd-endpoints=http://x'}, {},
     "error: node-1: iface 'eth0 --etcd-endpoints=http://x' is not an interface name: 1-15 "
     'characters of A-Z a-z 0-9 _ . -, no leading -'),
    ('unit line in iface', NAME, {'iface': 'eth0\nExecStartPre=/bin/sh'}, {},
     "error: node-1: iface 'eth0\\nExecStartPre=/bin/sh' is not an interface name: 1-15 "
     'characters of A-Z a-z 0-9 _ . -, no leading -'),
    ('iface over 15', NAME, {'iface': 'averyveryverylongname'}, {},
     "error: node-1: iface 'averyveryverylongname' is not an interface name: 1-15 characters "
     'of A-Z a-z 0-9 _ . -, no leading -'),
    ('slash in iface', NAME, {'iface': 'eth0/1'}, {},
     "error: node-1: iface 'eth0/1' is not an interface name: 1-15 characters of A-Z a-z 0-9 "
     '_ . -, no leading -'),
    ('colon in iface', NAME, {'iface': 'eth0:1'}, {},
     "error: node-1: iface 'eth0:1' is not an interface name: 1-15 characters of A-Z a-z 0-9 "
     '_ . -, no leading -'),
    ('list as iface', NAME, {'iface': ['eth0']}, {},
     "error: node-1: iface ['eth0'] is list, not a string"),
    ('ProxyCommand in ssh_user', NAME, {'ssh_user': 'root\n  ProxyCommand sh -c x'}, {},
     "error: node-1: ssh_user 'root\\n  ProxyCommand sh -c x' is not a user name: a letter "
     'or _, then up to 31 of A-Z a-z 0-9 _ . -'),
    ('substitution in ssh_user', NAME, {'ssh_user': '$(id)'}, {},
     "error: node-1: ssh_user '$(id)' is not a user name: a letter or _, then up to 31 of "
     'A-Z a-z 0-9 _ . -'),
    ('port as string', NAME, {'ssh_port': '22'}, {},
     "error: node-1: ssh_port '22' is not a port: use an int in 1..65535"),
    ('port out of range', NAME, {'ssh_port': 70000}, {},
     'error: node-1: ssh_port 70000 is not a port: use an int in 1..65535'),
    ('host key checking off', NAME, {'ssh_strict_host_key_checking': 'no'}, {},
     "error: node-1: ssh_strict_host_key_checking 'no' turns strict host key checking off: "
     "kubesmith refuses unknown host keys: remove it, and pin a new host's key once with "
     '--trust-new-host-keys'),
    ('host keys trusted on first use', NAME, {'ssh_strict_host_key_checking': 'accept-new'}, {},
     "error: node-1: ssh_strict_host_key_checking 'accept-new' turns strict host key "
     "checking off: kubesmith refuses unknown host keys: remove it, and pin a new host's key "
     'once with --trust-new-host-keys'),
    ('ssh key pyinfra does not read', NAME, {'ssh_proxy_command': 'nc x 22'}, {},
     "error: node-1: unknown host data key 'ssh_proxy_command': pyinfra's SSH connector "
     'reads no such key: remove it'),
    ('space in ssh_key', NAME, {'ssh_key': '/tmp/k ey'}, {},
     "error: node-1: ssh_key '/tmp/k ey' has the character ' ': use a path of A-Z a-z 0-9 "
     'and _ . , / ~ + @ : = -'),
    ('option as known_hosts', NAME, {'ssh_known_hosts_file': '-oProxyCommand=x'}, {},
     "error: node-1: ssh_known_hosts_file '-oProxyCommand=x' starts with '-'"),
    ('newline in password', NAME, {'ssh_password': 'pa\nss'}, {},
     "error: node-1: ssh_password contains the control character '\\n'"),
    ('command in sudo user', NAME, {'_sudo_user': 'root; reboot'}, {},
     "error: node-1: _sudo_user 'root; reboot' is not a user name: a letter or _, then up to "
     '31 of A-Z a-z 0-9 _ . -'),
    ('bad variable name', NAME, {'_env': {'A B': 'x'}}, {},
     "error: node-1: _env {'A B': 'x'} has the variable name 'A B': use A-Z a-z 0-9 _"),
    ('space in ssh_hostname', NAME, {'ssh_hostname': 'host name'}, {},
     "error: node-1: ssh_hostname 'host name' is neither an IP nor a host name: has the "
     "character ' ': use a-z, 0-9, '-' and '.'"),
    ('scope in ssh_hostname', NAME, {'ssh_hostname': 'fe80::1%eth0'}, {},
     "error: node-1: ssh_hostname 'fe80::1%eth0' has a scope id: use an address without %"),
    ('config dir /etc', NAME, {}, {'kube_config_dir': '/etc'},
     "error: kube_config_dir: '/etc' is a directory the system owns: kubesmith would chmod, "
     "chown or (reset) remove it: use a directory of kubesmith's own"),
    ('data dir /var', NAME, {}, {'etcd_data_dir': '/var'},
     "error: etcd_data_dir: '/var' is a directory the system owns: kubesmith would chmod, "
     "chown or (reset) remove it: use a directory of kubesmith's own"),
    ('dir with ..', NAME, {}, {'cni_conf_dir': '/etc/cni/../..'},
     "error: cni_conf_dir: '/etc/cni/../..' is not normalized: use /"),
    ('relative dir', NAME, {}, {'pki_dir': 'etc/kubernetes/pki'},
     "error: pki_dir: 'etc/kubernetes/pki' is not absolute: start it with /"),
    ('command in dir', NAME, {}, {'cni_bin_dir': '/opt/cni/bin; rm -rf /'},
     "error: cni_bin_dir: '/opt/cni/bin; rm -rf /' has the character ';': use A-Z a-z 0-9 _ "
     '. - and /'),
    ('double slash', NAME, {}, {'kube_config_dir': '//etc'},
     "error: kube_config_dir: '//etc' is not normalized: use /etc"),
    ('home directory', NAME, {}, {'etcd_data_dir': '/home/alice/etcd'},
     "error: etcd_data_dir: '/home/alice/etcd' is a directory the system owns: kubesmith "
     "would chmod, chown or (reset) remove it: use a directory of kubesmith's own"),
    ('newline in dir', NAME, {}, {'pki_dir': '/etc/kubernetes/pki\nx'},
     "error: pki_dir: '/etc/kubernetes/pki\\nx' has the character '\\n': use A-Z a-z 0-9 _ . "
     '- and /'),
    ('trailing slash', NAME, {}, {'bin_dir': '/usr/local/bin/'},
     "error: bin_dir: '/usr/local/bin/' is not normalized: use /usr/local/bin"),
    ('system library tree', NAME, {}, {'kube_config_dir': '/usr/lib/kubernetes'},
     "error: kube_config_dir: '/usr/lib/kubernetes' is a directory the system owns: "
     "kubesmith would chmod, chown or (reset) remove it: use a directory of kubesmith's own"),
    ('duration without unit', NAME, {}, {'leader_elect_lease_duration': '60'},
     "error: leader_elect_lease_duration: '60' is not a duration: use a number and one of "
     'ms, s, m, h (e.g. 60s)'),
    ('command in duration', NAME, {}, {'leader_elect_renew_deadline': '40s; reboot'},
     "error: leader_elect_renew_deadline: '40s; reboot' is not a duration: use a number and "
     'one of ms, s, m, h (e.g. 60s)'),
    ('uppercase domain', NAME, {}, {'cluster_domain': 'Cluster.Local'},
     "error: cluster_domain: 'Cluster.Local' " + MAIN_DNS),
    ('newline in domain', NAME, {}, {'cluster_domain': 'cluster.local\nx'},
     "error: cluster_domain: 'cluster.local\\nx' " + MAIN_DNS),
    ('relative prefix', NAME, {}, {'flannel_etcd_prefix': 'coreos.com/network'},
     "error: flannel_etcd_prefix: 'coreos.com/network' is not a key prefix: use /segments of "
     'A-Z a-z 0-9 _ . - (e.g. /coreos.com/network)'),
    ('substitution in prefix', NAME, {}, {'flannel_etcd_prefix': '/coreos.com/network $(x)'},
     "error: flannel_etcd_prefix: '/coreos.com/network $(x)' is not a key prefix: use "
     '/segments of A-Z a-z 0-9 _ . - (e.g. /coreos.com/network)'),
    ('command in version', NAME, {}, {'etcd_version': 'v3.6.16;reboot'},
     "error: etcd_version: 'v3.6.16;reboot' is not a version: use one like v1.2.3"),
    ('newline in version', NAME, {}, {'kubernetes_version': 'v1.34.4\n'},
     "error: kubernetes_version: 'v1.34.4\\n' is not a version: use one like v1.2.3"),
    ('list as CIDR', NAME, {}, {'pod_cidr': ['10.200.0.0/16']},
     "error: pod_cidr: ['10.200.0.0/16'] is list, not str like the default '10.200.0.0/16'"),
    ('int as domain', NAME, {}, {'cluster_domain': 5},
     "error: cluster_domain: 5 " + MAIN_DNS),
    ('host keys trusted for all', NAME, {}, {'ssh_strict_host_key_checking': 'accept-new'},
     "error: ssh_strict_host_key_checking: 'accept-new' turns strict host key checking off: "
     "kubesmith refuses unknown host keys: remove it, and pin a new host's key once with "
     '--trust-new-host-keys'),
    ('IPv6 pod network', NAME, {}, {'pod_cidr': 'fd00::/48'},
     'error: pod_cidr: fd00::/48 is IPv6: IPv6 is not supported yet: use IPv4'),
]


def _groups(name: str, host: dict[str, object]) -> Groups:
    """master-1 (etcd, master) and two nodes; the first node's name and data replaced."""
    master = [("master-1", {"address": "192.0.2.10", "iface": "eth0", **SSH})]
    data = {k: v for k, v in {"address": "192.0.2.21", "iface": "eth0", **SSH, **host}.items()
            if v is not None}
    return {"etcd": master, "masters": master,
            "nodes": [(name, data), ("node-2", {"address": "192.0.2.22", **SSH})]}


def test_the_catalogue_is_large() -> None:
    assert len(CATALOGUE) >= 40


@pytest.mark.parametrize(("name", "host", "data", "line"), [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_refused_before_anything_is_touched(name: str, host: dict, data: dict, line: str,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("KUBESMITH_STATE", str(state))
    with pytest.raises(ValidationError) as raised:
        context.build(_groups(name, host), {**settings.group_data(), **data}, "hostile",
                      warn=lambda _w: None)
    assert str(raised.value).splitlines() == [line]
    assert not state.exists()


def test_legitimate_values_pass() -> None:
    host = {"ssh_hostname": "Node-1.Example.COM", "ssh_port": 2222, "iface": "enp0s8.100",
            "ssh_known_hosts_file": "~/.ssh/known_hosts", "_env": {"LANG": "C.UTF-8"}}
    data = {"bin_dir": "/usr/local/bin", "kube_config_dir": "/etc/kubernetes",
            "cluster_domain": "k8s.example.com", "leader_elect_retry_period": "500ms"}
    groups = _groups("node-1.example.com", host)
    assert context.build(groups, {**settings.group_data(), **data}, "ok").cluster.hosts


# Through the command line, as a user runs it: exit 1, one stderr line per problem, then the
# "nothing was changed" line; no traceback; no state directory.
FILES = {
    "bad values": ('etcd = [("Master1", {"address": "127.0.0.1", "iface": "eth0 --x"})]\n'
                   'masters = etcd\nnodes = [("n1", {"address": "10.0.0.2", '
                   '"ssh_user": "root\\nProxyCommand x"})]\n',
                   ["error: Master1: address '127.0.0.1' is not a host's address (loopback): "
                    "use the IP the other hosts reach it at",
                    "error: 'Master1': host name has uppercase letters: use lowercase (a "
                    "Kubernetes node name: a DNS-1123 subdomain, FQDNs allowed)",
                    "error: Master1: iface 'eth0 --x' is not an interface name: 1-15 characters "
                    "of A-Z a-z 0-9 _ . -, no leading -",
                    "error: n1: ssh_user 'root\\nProxyCommand x' is not a user name: a letter "
                    "or _, then up to 31 of A-Z a-z 0-9 _ . -",
                    "nothing was changed: fix the inventory and run again"]),
    "not a host entry": ("etcd = [5]\nmasters = etcd\nnodes = etcd\n",
                         ["error: inventory {path}: `etcd` entry 1 5: use a host name or "
                          "(name, {{data}})"]),
    "data not a dict": ('etcd = [("m1", "10.0.0.1")]\nmasters = etcd\nnodes = etcd\n',
                        ["error: inventory {path}: `etcd` entry 1 ('m1', '10.0.0.1'): use a host "
                         "name or (name, {{data}})"]),
    "raises": ("raise RuntimeError('no\\nway')\n",
               ["error: inventory {path}: RuntimeError: no\\nway"]),
    "exits": ("import sys\nsys.exit(3)\n", ["error: inventory {path}: SystemExit: 3"]),
}


def _deploy(inventory: Path, state: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBESMITH_STATE=str(state))
    return subprocess.run([sys.executable, str(settings.PROJECT / "deploy.py"), "up", "-i",
                           str(inventory)], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


@pytest.mark.parametrize("case", FILES)
def test_deploy_up_refuses_in_one_line_per_problem(case: str, tmp_path: Path) -> None:
    text, expected = FILES[case]
    inventory = tmp_path / "hosts.py"
    inventory.write_text(text)
    result = _deploy(inventory, tmp_path / "state")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()
    assert result.stderr.splitlines() == [line.format(path=inventory) for line in expected]


def test_a_broken_group_data_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text("pod_cidr = (\n")
    inventory = tmp_path / "hosts.py"
    inventory.write_text('etcd = [("m1", {"address": "10.0.0.1"})]\nmasters = nodes = etcd\n')
    result = _deploy(inventory, tmp_path / "state")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: group data {tmp_path / 'group_data' / 'all.py'}: "
                                    "SyntaxError: ")
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "state").exists()
