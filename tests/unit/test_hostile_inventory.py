"""A catalogue of hostile or malformed inventories and settings: each is refused before any host
or local state is touched, with one line naming the host or key and the rule, never a traceback.
A few go through `deploy.py up -i FILE` as a user would run them."""

from __future__ import annotations

import json
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
FQDN = "worker-01.k8s-production.eu-central-1.internal.example.com"  # 58: a valid DNS name
DIRS = ("kubesmith chmods, chowns (etcd_data_dir: chown -R etcd) and resets each on its own: use "
        "separate directories (only pki_dir may be inside kube_config_dir)")
NUMERIC = ("looks like an IPv4 address but is not one (a.b.c.d, each 0-255, no leading zeros): "
           "resolvers misread such names (010.0.0.100 as 8.0.0.100, 0x10 as 0.0.0.16) or look "
           "them up in DNS")

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
    # Values that passed validation and broke a component (Go, flannel, client-go, X.509...).
    ('netmask pod network', NAME, {}, {'pod_cidr': '10.200.0.0/255.255.0.0'},
     "error: pod_cidr: invalid CIDR: '10.200.0.0/255.255.0.0' is not written a.b.c.d/len: use "
     '10.200.0.0/16'),
    ('bare service network', NAME, {}, {'service_cidr': '10.32.0.0'},
     "error: service_cidr: invalid CIDR: '10.32.0.0' is not written a.b.c.d/len: add the "
     'prefix length, e.g. 10.32.0.0/16'),
    ('pod network /25', NAME, {}, {'pod_cidr': '10.200.0.0/25'},
     "error: pod_cidr: 10.200.0.0/25 is not larger than flannel's per-host /24 subnet: use a "
     'prefix shorter than /24, e.g. /16'),
    ('pod network /23 for 3 hosts', NAME, {}, {'pod_cidr': '10.200.0.0/23'},
     'error: pod_cidr: 10.200.0.0/23 has 1 /24 subnet for flannel (it never leases the first) '
     'but 3 hosts run flanneld (masters and nodes): use a larger network, e.g. a /16'),
    ('loopback pod network', NAME, {}, {'pod_cidr': '127.0.0.0/16'},
     'error: pod_cidr: 127.0.0.0/16 overlaps the loopback range 127.0.0.0/8: use a private '
     'range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)'),
    ('multicast service network', NAME, {},
     {'service_cidr': '224.0.0.0/24', 'cluster_dns': '224.0.0.10'},
     'error: service_cidr: 224.0.0.0/24 overlaps the multicast range 224.0.0.0/4: use a '
     'private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)'),
    ('lease not over renew deadline', NAME, {}, {'leader_elect_lease_duration': '30s'},
     "error: leader_elect_lease_duration: '30s' is not longer than leader_elect_renew_deadline "
     "'40s': client-go's leader election requires lease_duration > renew_deadline > 1.2 × "
     'retry_period'),
    ('renew deadline within jitter', NAME, {}, {'leader_elect_retry_period': '34s'},
     "error: leader_elect_renew_deadline: '40s' is not longer than 1.2 × "
     "leader_elect_retry_period '34s': client-go's leader election requires lease_duration > "
     'renew_deadline > 1.2 × retry_period'),
    ('zero retry period', NAME, {}, {'leader_elect_retry_period': '0s'},
     "error: leader_elect_retry_period: '0s' is zero: use a positive duration (e.g. 60s)"),
    ('duration over int64', NAME, {}, {'leader_elect_lease_duration': '99999999999h'},
     "error: leader_elect_lease_duration: '99999999999h' is out of range: a Go duration is "
     'int64 nanoseconds, at most 2562047h (about 292 years)'),
    ('name over the CN limit', FQDN, {}, {},
     f"error: {FQDN!r}: host name makes the certificate CN 'system:node:{FQDN}' 70 characters "
     'long: X.509 allows at most 64: use a name of at most 52 characters for this host\'s roles'),
    ('etcd data in the config dir', NAME, {}, {'etcd_data_dir': '/etc/kubernetes/etcd'},
     "error: etcd_data_dir: '/etc/kubernetes/etcd' is inside kube_config_dir '/etc/kubernetes': "
     + DIRS),
    ('config dir is the etcd data dir', NAME, {}, {'kube_config_dir': '/var/lib/etcd'},
     "error: kube_config_dir: '/var/lib/etcd' is also etcd_data_dir '/var/lib/etcd': " + DIRS),
    ('bin_dir is the CNI plugins dir', NAME, {}, {'bin_dir': '/opt/cni/bin'},
     "error: bin_dir: '/opt/cni/bin' is also cni_bin_dir '/opt/cni/bin': " + DIRS),
    ("etcd data in the kubelet's", NAME, {}, {'etcd_data_dir': '/var/lib/kubelet'},
     "error: etcd_data_dir: '/var/lib/kubelet' is also kubesmith's own directory "
     '/var/lib/kubelet: ' + DIRS),
    ("flannel in the apiserver's prefix", NAME, {}, {'flannel_etcd_prefix': '/registry/secrets'},
     "error: flannel_etcd_prefix: '/registry/secrets' is under kube-apiserver's etcd prefix "
     "/registry: flannel's keys and its etcd role would reach the cluster's objects (Secrets "
     'included): use a prefix of its own (e.g. /coreos.com/network)'),
    ("cluster DNS at the network address", NAME, {}, {'cluster_dns': '10.32.0.0'},
     "error: cluster_dns: 10.32.0.0 is service_cidr 10.32.0.0/24's network address, which the "
     'apiserver never allocates to a Service: use another address inside it'),
    ("cluster DNS at the broadcast address", NAME, {}, {'cluster_dns': '10.32.0.255'},
     "error: cluster_dns: 10.32.0.255 is service_cidr 10.32.0.0/24's broadcast address, which "
     'the apiserver never allocates to a Service: use another address inside it'),
    ('endpoint with a leading zero', NAME, {}, {'apiserver_endpoint': 'https://010.0.0.100:6443'},
     "error: apiserver_endpoint: 'https://010.0.0.100:6443' names the host '010.0.0.100', which "
     + NUMERIC + ': use https://NAME-OR-IP[:PORT], e.g. https://10.0.0.100:6443'),
    ('endpoint with an octet over 255', NAME, {}, {'apiserver_endpoint': 'https://10.0.0.300'},
     "error: apiserver_endpoint: 'https://10.0.0.300' names the host '10.0.0.300', which "
     + NUMERIC + ': use https://NAME-OR-IP[:PORT], e.g. https://10.0.0.100:6443'),
    ('numeric-looking name', '010.0.0.21', {}, {},
     f"error: '010.0.0.21': host name {NUMERIC} (a Kubernetes node name: a DNS-1123 subdomain, "
     'FQDNs allowed)'),
    ('hex name', '0x10', {}, {},
     f"error: '0x10': host name {NUMERIC} (a Kubernetes node name: a DNS-1123 subdomain, "
     'FQDNs allowed)'),
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


@pytest.mark.parametrize("name", ["yes", "off", "on", "null", "1e3", "10.0.0.21",
                                  "a" * 52, "n1.k8s.example.com"])
def test_legitimate_names_pass(name: str) -> None:
    # YAML 1.1 would read some as bools or numbers: the templates render them as JSON strings
    # (test_hostile_values.py); a node name of 52 characters keeps system:node:<name> in 64.
    data = {**settings.group_data(), "cluster_domain": "on", "pod_cidr": "10.200.0.0/22",
            "apiserver_endpoint": "https://10.0.0.100:6443"}
    groups = _groups(name, {"address": "192.0.2.21"} if name != "10.0.0.21" else
                     {"address": None})
    assert context.build(groups, data, "ok").cluster.host(name)


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
    "group data in another group": (
        'etcd = [("m1", {"address": "10.0.0.1"})]\nmasters = etcd\nnodes = [("n1", '
        '{"address": "10.0.0.2"})]\nrack2 = (["n1"], {"address": "10.9.0.2", "iface": "eth1"})\n',
        ["error: inventory {path}: `rack2` has group data (address, iface): kubesmith reads "
         "group data only for etcd, masters and nodes: move it there or into each host's own "
         "entry"]),
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


def test_pyinfra_cli_refuses_group_data_of_another_group_alike() -> None:
    # `pyinfra INVENTORY deploy.py`: pyinfra applies rack2's data to n1 (its connection too);
    # kubesmith reads host data from the role groups only: refused, as `deploy.py up` refuses it.
    from pyinfra.api import Inventory
    from pyinfra.context import ctx_inventory

    from kubesmith import pyinfra_cli
    from kubesmith.inventory import InventoryError

    hosts = ["m1", "n1"]
    groups = {"etcd": (["m1"], {}), "masters": (["m1"], {}), "nodes": (["n1"], {}),
              "hosts": (hosts, {})}
    plain = Inventory((hosts, {}), **groups)
    with ctx_inventory.use(plain):
        assert sorted(pyinfra_cli._groups()) == ["etcd", "masters", "nodes"]
    for extra in ({"rack2": (["n1"], {"_sudo_user": "root; reboot"})},
                  {"hosts": (hosts, {"address": "10.9.0.2"})}):  # group_data/<inventory>.py
        group, (_members, data) = next(iter(extra.items()))
        with ctx_inventory.use(Inventory((hosts, {}), **{**groups, **extra})), \
                pytest.raises(InventoryError) as raised:
            pyinfra_cli._groups()
        assert str(raised.value).endswith(
            f": `{group}` has group data ({', '.join(data)}): kubesmith reads group data only "
            "for etcd, masters and nodes: move it there or into each host's own entry")


def _inventory_file(directory: Path, stem: str) -> Path:
    inventory = directory / f"{stem}.py"
    inventory.write_text('etcd = [("m1", {"address": "192.0.2.10"})]\nmasters = etcd\n'
                         'nodes = [("n1", {"address": "192.0.2.21"})]\n')
    return inventory


@pytest.mark.parametrize("stem", ["..", ".", ".hidden", "-x", "a" * 64])
def test_an_inventory_name_that_would_name_the_state_directory_badly(
        stem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # cluster_name defaults to the inventory file's stem, which names state/<name>/: '...py'
    # would put the cluster's CAs in state/.. (the state root's parent).
    monkeypatch.delenv("KUBESMITH_STATE", raising=False)
    monkeypatch.setenv("KUBESMITH_STATE_ROOT", str(tmp_path / "root" / "state"))
    inventory = _inventory_file(tmp_path, stem)
    with pytest.raises(ValidationError) as raised:
        context.load(inventory, warn=lambda _w: None)
    assert str(raised.value).splitlines() == [
        f"error: cluster_name: unset, and the inventory's file name {stem!r} (the default) is no "
        "plain name (1-63 of A-Za-z0-9_.-, not starting with '.' or '-': it names the state "
        "directory): set cluster_name in group data, or rename the inventory"]
    assert not (tmp_path / "root").exists()
    # Named otherwise, the same inventory is fine.
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text('cluster_name = "prod"\n')
    assert context.load(inventory, warn=lambda _w: None).state == tmp_path / "root/state/prod"


@pytest.mark.parametrize("stem", ["Prod", "prod_eu", "lab.v2"])
def test_an_inventory_file_name_that_was_fine_stays_fine(
        stem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBESMITH_STATE", raising=False)
    monkeypatch.setenv("KUBESMITH_STATE_ROOT", str(tmp_path / "state"))
    inventory = _inventory_file(tmp_path, stem)
    assert context.load(inventory, warn=lambda _w: None).state == tmp_path / "state" / stem


def test_the_state_directory_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # It holds the CAs' keys and kubeconfigs with keys: 0700 whatever the umask, and an existing
    # one with a wider mode is tightened; the state root itself is left as it is.
    monkeypatch.delenv("KUBESMITH_STATE", raising=False)
    monkeypatch.setenv("KUBESMITH_STATE_ROOT", str(tmp_path / "state"))
    ctx = context.load(_inventory_file(tmp_path, "private"), warn=lambda _w: None)
    old = os.umask(0o022)
    try:
        context.claim(ctx)
    finally:
        os.umask(old)
    assert ctx.state == tmp_path / "state" / "private"
    assert ctx.state.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o755
    ctx.state.chmod(0o755)
    context.claim(ctx)
    assert ctx.state.stat().st_mode & 0o777 == 0o700
    assert context.owner(ctx.state) == str(tmp_path / "private.py")


# pyinfra's CLI reading an inventory, as kubesmith's deploy.py reads it under `pyinfra`, in a
# process of its own: importing pyinfra_cli patches threading for gevent (it would break
# pytest-xdist's worker here).
PYINFRA_CLI_GROUPS = """
import json, sys
from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_inventory, ctx_state
from pyinfra_cli.inventory import make_inventory
from kubesmith import pyinfra_cli
with ctx_state.use(State(Inventory(([], {})), Config())):
    read = make_inventory(sys.argv[1], cwd=sys.argv[2])
with ctx_inventory.use(read):
    print(json.dumps(pyinfra_cli._groups()))
"""


def test_a_role_group_data_file_is_read_on_both_routes(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # pyinfra's layout: group_data/nodes.py beside the inventory gives every node its data.
    # `deploy.py up` reads it as pyinfra's CLI does (it used to ignore it), and validates it.
    monkeypatch.setenv("KUBESMITH_STATE", str(tmp_path / "state"))
    inventory = _inventory_file(tmp_path, "prod")
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "nodes.py").write_text('import os\niface = "eth1"\n_sudo = True\n')
    ctx = context.load(inventory, warn=lambda _w: None)
    wanted = {"address": "192.0.2.21", "iface": "eth1", "_sudo": True}
    assert dict(ctx.groups["nodes"])["n1"] == wanted
    assert dict(ctx.groups["masters"])["m1"] == {"address": "192.0.2.10"}
    read = subprocess.run([sys.executable, "-c", PYINFRA_CLI_GROUPS, str(inventory),
                           str(tmp_path)], capture_output=True, text=True, check=True,
                          cwd=settings.PROJECT, env={**os.environ, "PYTHONPATH": str(
                              settings.PROJECT)})
    assert dict(json.loads(read.stdout)["nodes"])["n1"] == wanted
    (tmp_path / "group_data" / "nodes.py").write_text('iface = "eth1 --flag"\n')
    with pytest.raises(ValidationError, match="n1"):
        context.load(inventory, warn=lambda _w: None)


def test_a_group_data_file_of_another_group_is_refused_on_deploy_py_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubesmith.inventory import InventoryError

    monkeypatch.setenv("KUBESMITH_STATE", str(tmp_path / "state"))
    inventory = _inventory_file(tmp_path, "prod")
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "prod.py").write_text('address = "10.9.0.2"\n')
    with pytest.raises(InventoryError, match="`prod` has group data \\(address\\)"):
        context.load(inventory, warn=lambda _w: None)


def test_a_host_with_two_values_for_one_key_is_refused(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # m1 got whichever address its last group gave: refused, naming both (secrets never shown).
    monkeypatch.setenv("KUBESMITH_STATE", str(tmp_path / "state"))
    inventory = tmp_path / "two.py"
    inventory.write_text(
        'etcd = [("m1", {"address": "10.0.0.1", "ssh_password": "hunter2"})]\nmasters = etcd\n'
        'nodes = [("m1", {"address": "10.0.0.2", "ssh_password": "letmein"})]\n')
    with pytest.raises(ValidationError) as raised:
        context.load(inventory, warn=lambda _w: None)
    assert str(raised.value).splitlines() == [
        "error: 'm1': address is '10.0.0.1' in etcd but '10.0.0.2' in nodes: give the host one "
        "value",
        "error: 'm1': ssh_password is one value in etcd but another in nodes: give the host one "
        "value"]
