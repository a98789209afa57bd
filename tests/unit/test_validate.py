"""Inventory and group data validation: each problem names its host or field and the fix."""

import pytest

from kubesmith import settings
from kubesmith.inventory import Groups, load_groups
from kubesmith.validate import Problem, ValidationError, check, validate

SSH = {"ssh_user": "root", "ssh_key": "~/.ssh/id_ed25519", "_sudo": True}


def _host(name: str, address: str, **extra: object) -> tuple[str, dict[str, object]]:
    return name, {"address": address, "iface": "eth0", **SSH, **extra}


def _groups(**groups: list[tuple[str, dict[str, object]]]) -> Groups:
    """A valid one-master, two-node inventory, with groups replaced or added."""
    master = [_host("master-1", "192.0.2.10")]
    base: Groups = {
        "etcd": master,
        "masters": master,
        "nodes": [_host("node-1", "192.0.2.21"), _host("node-2", "192.0.2.22")],
    }
    return {**base, **groups}


def _data(**overrides: object) -> dict[str, object]:
    return {**settings.group_data(), **overrides}


def _lines(groups: Groups | None = None, data: dict[str, object] | None = None) -> list[str]:
    return [str(p) for p in check(groups or _groups(), data or _data())]


def test_valid_inventory_has_no_problems() -> None:
    assert check(_groups(), _data()) == []
    assert validate(_groups(), _data()) == []


def test_example_inventory_is_valid() -> None:
    groups = load_groups(settings.PROJECT / "inventories" / "example.py")
    assert check(groups, settings.group_data()) == []


def test_problem_str() -> None:
    assert str(Problem("error", "node-1", "fix it")) == "error: node-1: fix it"


@pytest.mark.parametrize("role", ["etcd", "masters", "nodes"])
@pytest.mark.parametrize("empty", [True, False])
def test_missing_or_empty_role_group(role: str, empty: bool) -> None:
    groups = _groups()
    if empty:
        groups[role] = []
    else:
        del groups[role]
    message = f"error: {role}: no hosts: add a `{role} = [...]` list to the inventory"
    assert message in _lines(groups)


def test_even_etcd_member_count_is_a_quorum_warning() -> None:
    etcd = [_host("master-1", "192.0.2.10"), _host("master-2", "192.0.2.11")]
    warnings = validate(_groups(etcd=etcd), _data())
    assert [str(w) for w in warnings] == [
        "warning: etcd: 2 members: quorum: use an odd number (1, 3, 5)",
    ]


def test_duplicate_host_in_group() -> None:
    nodes = [_host("node-1", "192.0.2.21"), _host("node-1", "192.0.2.21")]
    assert _lines(_groups(nodes=nodes)) == [
        "error: node-1: listed 2 times in `nodes`: list each host once",
    ]


def test_same_address_on_two_hosts() -> None:
    nodes = [_host("node-1", "192.0.2.21"), _host("node-2", "192.0.2.21")]
    assert _lines(_groups(nodes=nodes)) == [
        "error: node-2: address 192.0.2.21 is also node-1's: give each host its own",
    ]


def test_address_falls_back_to_ssh_hostname_for_sharing() -> None:
    nodes = [("node-1", {"ssh_hostname": "192.0.2.10"}), _host("node-2", "192.0.2.22")]
    assert _lines(_groups(nodes=nodes)) == [
        "error: node-1: address 192.0.2.10 is also master-1's: give each host its own",
    ]


def test_explicit_address_must_be_an_ip() -> None:
    nodes = [_host("node-1", "node-1.example"), _host("node-2", "192.0.2.22")]
    assert _lines(_groups(nodes=nodes)) == [
        "error: node-1: address 'node-1.example' is not an IP: set the host's IP",
    ]


def test_hostname_without_an_ip_is_refused() -> None:
    # The cluster address goes into certificates (IP SANs) and URLs: it must be an IP.
    nodes = [("node-1.example", SSH), ("node-2.example", {**SSH, "address": "192.0.2.22"})]
    assert _lines(_groups(nodes=nodes)) == [
        "error: node-1.example: no IP address: set `address` to the IP the other hosts reach it "
        "at (neither ssh_hostname nor the name is an IP)",
    ]


def test_ssh_hostname_is_the_address_when_it_is_an_ip() -> None:
    nodes = [("node-1.example", {**SSH, "ssh_hostname": "192.0.2.21"}),
             _host("node-2", "192.0.2.22")]
    assert _lines(_groups(nodes=nodes)) == []


def test_pod_and_service_cidrs_overlap() -> None:
    assert _lines(data=_data(service_cidr="10.200.8.0/24", cluster_dns="10.200.8.10")) == [
        "error: service_cidr: 10.200.8.0/24 overlaps pod_cidr 10.200.0.0/16: use disjoint ranges",
    ]


@pytest.mark.parametrize("field", ["pod_cidr", "service_cidr"])
def test_host_address_inside_cluster_network(field: str) -> None:
    network = "10.200.0.0/16" if field == "pod_cidr" else "10.32.0.0/24"
    address = "10.200.3.4" if field == "pod_cidr" else "10.32.0.200"
    nodes = [_host("node-1", "192.0.2.21"), _host("node-2", address)]
    assert _lines(_groups(nodes=nodes)) == [
        f"error: node-2: address {address} is inside {field} {network}: change {field}",
    ]


@pytest.mark.parametrize(("dns", "message"), [
    ("10.33.0.10", "10.33.0.10 is outside service_cidr 10.32.0.0/24: use one inside it"),
    ("10.32.0.1", "10.32.0.1 is the kubernetes service VIP: use another address"),
    ("dns", "'dns' is not an IP: use an address in service_cidr"),
])
def test_cluster_dns_must_be_a_free_address_in_service_cidr(dns: str, message: str) -> None:
    assert _lines(data=_data(cluster_dns=dns)) == [f"error: cluster_dns: {message}"]


@pytest.mark.parametrize("cidr", ["10.32.0.10/32", "10.32.0.10/31"])
def test_service_cidr_without_room_for_the_vip(cidr: str) -> None:
    lines = _lines(data=_data(service_cidr=cidr))
    assert lines == [f"error: service_cidr: {cidr} has no room for the service VIP and "
                     "cluster_dns besides its network and broadcast addresses: use e.g. a /24"]


def test_a_slash_30_holds_the_vip_and_cluster_dns() -> None:
    assert _lines(data=_data(service_cidr="10.32.0.0/30", cluster_dns="10.32.0.2")) == []


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("pod_cidr", "10.200.0.0/33", "'10.200.0.0/33' does not appear to be an IPv4 or IPv6 network"),
    ("service_cidr", "10.32.0.1/24", "10.32.0.1/24 has host bits set"),
])
def test_invalid_cidr(field: str, value: str, reason: str) -> None:
    assert f"error: {field}: invalid CIDR: {reason}" in _lines(data=_data(**{field: value}))


def test_missing_cidr() -> None:
    data = _data()
    del data["pod_cidr"]
    assert _lines(data=data) == ["error: pod_cidr: missing: define it in group_data/all.py"]


@pytest.mark.parametrize(("key", "advice"), [
    ("adress", "did you mean address?"),
    ("_sduo", "did you mean _sudo?"),
    ("shh_user", "did you mean ssh_user?"),
    ("colour", "remove it"),
])
def test_unknown_host_key(key: str, advice: str) -> None:
    nodes = [_host("node-1", "192.0.2.21", **{key: "x"}), _host("node-2", "192.0.2.22")]
    assert _lines(_groups(nodes=nodes)) == [
        f"error: node-1: unknown host data key {key!r}: {advice}",
    ]


def test_connection_keys_are_allowed() -> None:
    extra = {"ssh_port": 2222, "ssh_connect_retries": 2, "_sudo_user": "k",
             "_use_sudo_password": "p", "_su_user": "k", "_doas": False, "_env": {"A": "b"}}
    nodes = [_host("node-1", "192.0.2.21", **extra), _host("node-2", "192.0.2.22")]
    assert _lines(_groups(nodes=nodes)) == []


def test_ssh_keys_pyinfra_does_not_read_are_refused() -> None:
    nodes = [_host("node-1", "192.0.2.21", ssh_anything=1), _host("node-2", "192.0.2.22")]
    assert _lines(_groups(nodes=nodes)) == [
        "error: node-1: unknown host data key 'ssh_anything': pyinfra's SSH connector reads no "
        "such key: remove it",
    ]


def test_unknown_group_data_key() -> None:
    data = _data(pod_cdir="10.200.0.0/16")
    assert _lines(data=data) == ["error: pod_cdir: unknown group data key: did you mean pod_cidr?"]


def test_new_group_data_default_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = settings.group_data()
    monkeypatch.setattr(settings, "group_data", lambda: {**defaults, "coredns_replicas": 2})
    assert _lines(data={**defaults, "coredns_replicas": 3}) == []


@pytest.mark.parametrize("version", ["v1.34", "1.2.3.4", "latest", "v1.2.3-", " v1.2.3"])
def test_malformed_version(version: str) -> None:
    assert _lines(data=_data(etcd_version=version)) == [
        f"error: etcd_version: {version!r} is not a version: use one like v1.2.3",
    ]


@pytest.mark.parametrize("version", ["v1.2.3", "3.10.1", "v1.2.3-rc.1", "v1.2.3+k3s1"])
def test_wellformed_version(version: str) -> None:
    assert _lines(data=_data(containerd_version=version)) == []


def test_host_in_no_role_group() -> None:
    others = [_host("bastion", "192.0.2.99")]
    assert _lines(_groups(others=others)) == [
        "warning: others: unknown group, ignored: kubesmith only uses etcd, masters and nodes",
        "warning: bastion: not in etcd, masters or nodes: nothing will be deployed on it",
    ]


@pytest.mark.parametrize(("typo", "role"), [("node", "nodes"), ("master", "masters"),
                                            ("ectd", "etcd")])
def test_misspelt_group_name(typo: str, role: str) -> None:
    groups = _groups()
    groups[typo] = groups.pop(role)
    assert f"warning: {typo}: unknown group, ignored: did you mean {role}?" in _lines(groups)


def test_misspelt_nodes_group_reports_every_consequence() -> None:
    groups = _groups()
    groups["node"] = groups.pop("nodes")
    assert _lines(groups) == [
        "error: nodes: no hosts: add a `nodes = [...]` list to the inventory",
        "warning: node: unknown group, ignored: did you mean nodes?",
        "warning: node-1: not in etcd, masters or nodes: nothing will be deployed on it",
        "warning: node-2: not in etcd, masters or nodes: nothing will be deployed on it",
    ]


@pytest.mark.parametrize("vni", [0, 16777216, "1", True, None])
def test_flannel_vni_range(vni: object) -> None:
    assert _lines(data=_data(flannel_vni=vni)) == [
        f"error: flannel_vni: {vni!r} is not a VXLAN id: use an int in 1..16777215",
    ]


def test_validate_raises_with_error_lines_only() -> None:
    etcd = [_host("master-1", "192.0.2.10"), _host("master-2", "192.0.2.11")]
    with pytest.raises(ValidationError) as raised:
        validate(_groups(etcd=etcd), _data(pod_cidr="nope"))
    assert str(raised.value) == (
        "error: pod_cidr: invalid CIDR: 'nope' does not appear to be an IPv4 or IPv6 network"
    )
    assert [p.level for p in raised.value.problems] == ["warning", "error"]


def test_garbage_data_never_raises() -> None:
    data = {"pod_cidr": None, "service_cidr": 5, "cluster_dns": None, "flannel_vni": "x",
            "etcd_version": None, 3: "x"}
    lines = _lines(_groups(), data)
    assert "error: pod_cidr: None is NoneType, not str like the default '10.200.0.0/16'" in lines
    assert "error: 3: unknown group data key: remove it or define it in group_data/all.py" in lines
    assert "error: etcd_version: None is NoneType, not str like the default 'v3.6.16'" in lines
    assert "error: flannel_vni: 'x' is not a VXLAN id: use an int in 1..16777215" in lines
    assert len([line for line in lines if line.startswith("error: pod_cidr:")]) == 1


@pytest.mark.parametrize("domain", ["Cluster.Local", "cluster_local", "-k8s.local", "k8s..local",
                                    "cluster.local.", "", 7, "a" * 64 + ".local"])
def test_cluster_domain_must_be_a_dns_name(domain: object) -> None:
    assert any(line.startswith(f"error: cluster_domain: {domain!r} is not a DNS name")
               for line in _lines(data=_data(cluster_domain=domain)))


@pytest.mark.parametrize("domain", ["cluster.local", "k8s", "corp-1.example.com"])
def test_cluster_domain_dns_names_pass(domain: str) -> None:
    assert _lines(data=_data(cluster_domain=domain)) == []


def test_unknown_addon_is_refused_with_a_suggestion() -> None:
    lines = _lines(data=_data(addons=["coredns", "metric-server", "kube-dns"]))
    assert "error: addons: unknown add-on 'metric-server': did you mean metrics-server?" in lines
    assert ("error: addons: unknown add-on 'kube-dns': known add-ons: coredns, metrics-server"
            in lines)


@pytest.mark.parametrize("listed", ["coredns", ["coredns", 3], None])
def test_addons_must_be_a_list_of_names(listed: object) -> None:
    assert any(line.startswith(f"error: addons: {listed!r} is not a list of add-on names")
               for line in _lines(data=_data(addons=listed)))


def test_no_addons_and_a_repeated_one() -> None:
    assert _lines(data=_data(addons=[])) == []
    assert "error: addons: 'coredns' listed 2 times: list each add-on once" in _lines(
        data=_data(addons=["coredns", "coredns"]))


# --- values that used to pass validation but break a component (the audit's catalogue) -------

@pytest.mark.parametrize(("field", "value", "fix"), [
    ("pod_cidr", "10.200.0.0/255.255.0.0", "use 10.200.0.0/16"),
    ("pod_cidr", "10.200.0.0", "add the prefix length, e.g. 10.200.0.0/16"),
    ("service_cidr", "10.32.0.0/255.255.255.0", "use 10.32.0.0/24"),
    ("service_cidr", "10.32.0.0/0.0.0.255", "use 10.32.0.0/24"),  # a hostmask, same network
])
def test_cidrs_must_be_written_as_go_reads_them(field: str, value: str, fix: str) -> None:
    # Go's net.ParseCIDR (flannel, kube-proxy, the apiserver) refuses these: the value is
    # rendered as it is, so it must be a.b.c.d/len.
    assert _lines(data=_data(**{field: value})) == [
        f"error: {field}: invalid CIDR: {value!r} is not written a.b.c.d/len: {fix}"]


@pytest.mark.parametrize(("field", "value", "what", "special"), [
    ("pod_cidr", "127.0.0.0/16", "loopback", "127.0.0.0/8"),
    ("pod_cidr", "224.0.0.0/16", "multicast", "224.0.0.0/4"),
    ("pod_cidr", "0.0.0.0/16", "unspecified ('this network')", "0.0.0.0/8"),
    ("pod_cidr", "0.0.0.0/0", "unspecified ('this network')", "0.0.0.0/8"),
    ("service_cidr", "169.254.0.0/24", "link-local", "169.254.0.0/16"),
    ("service_cidr", "240.0.0.0/24", "reserved", "240.0.0.0/4"),
])
def test_cluster_networks_outside_special_ranges(field: str, value: str, what: str,
                                                 special: str) -> None:
    dns = {"cluster_dns": value.replace("0/24", "10")} if field == "service_cidr" else {}
    assert _lines(data=_data(**{field: value}, **dns)) == [
        f"error: {field}: {value} overlaps the {what} range {special}: use a private range "
        "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"]


def test_flannel_subnet_len_is_the_tasks_one() -> None:
    from kubesmith import validate as validate_mod
    from tasks import flannel
    assert validate_mod.FLANNEL_SUBNET_LEN == flannel.SUBNET_LEN


@pytest.mark.parametrize("prefix", [24, 25, 32])
def test_pod_cidr_must_be_larger_than_a_flannel_subnet(prefix: int) -> None:
    assert _lines(data=_data(pod_cidr=f"10.200.0.0/{prefix}")) == [
        f"error: pod_cidr: 10.200.0.0/{prefix} is not larger than flannel's per-host /24 subnet: "
        "use a prefix shorter than /24, e.g. /16"]


def test_pod_cidr_needs_a_flannel_subnet_per_master_and_node() -> None:
    # master-1, node-1 and node-2 run flanneld; flannel leases from the 2nd /24 to the last.
    assert _lines(data=_data(pod_cidr="10.200.0.0/23")) == [
        "error: pod_cidr: 10.200.0.0/23 has 1 /24 subnet for flannel (it never leases the first) "
        "but 3 hosts run flanneld (masters and nodes): use a larger network, e.g. a /16"]
    assert _lines(data=_data(pod_cidr="10.200.0.0/22")) == []  # 3 subnets, 3 hosts
    etcd_only = [_host("etcd-2", "192.0.2.11"), _host("etcd-3", "192.0.2.12")]
    groups = _groups(etcd=[_host("master-1", "192.0.2.10"), *etcd_only])
    assert _lines(groups, _data(pod_cidr="10.200.0.0/22")) == []  # etcd alone runs no flanneld


@pytest.mark.parametrize(("settings_", "line"), [
    ({"leader_elect_lease_duration": "40s"},
     "leader_elect_lease_duration: '40s' is not longer than leader_elect_renew_deadline '40s'"),
    ({"leader_elect_renew_deadline": "6s", "leader_elect_retry_period": "5s"},
     "leader_elect_renew_deadline: '6s' is not longer than 1.2 × leader_elect_retry_period "
     "'5s'"),
    ({"leader_elect_renew_deadline": "6000ms", "leader_elect_retry_period": "5s"},
     "leader_elect_renew_deadline: '6000ms' is not longer than 1.2 × leader_elect_retry_period "
     "'5s'"),
])
def test_leader_election_durations_in_client_go_order(settings_: dict, line: str) -> None:
    rule = ("client-go's leader election requires lease_duration > renew_deadline > 1.2 × "
            "retry_period")
    assert _lines(data=_data(**settings_)) == [f"error: {line}: {rule}"]


def test_leader_election_order_edges_pass() -> None:
    # 1.2 × 5s = 6s: 6001ms is just longer (client-go truncates 1.2 × retry to nanoseconds).
    assert _lines(data=_data(leader_elect_lease_duration="6002ms",
                             leader_elect_renew_deadline="6001ms",
                             leader_elect_retry_period="5s")) == []


@pytest.mark.parametrize(("value", "why"), [
    ("0s", "is zero: use a positive duration (e.g. 60s)"),
    ("0ms", "is zero: use a positive duration (e.g. 60s)"),
    ("2562048h", "is out of range: a Go duration is int64 nanoseconds, at most 2562047h (about "
                 "292 years)"),
    ("9223372036855ms", "is out of range: a Go duration is int64 nanoseconds, at most 2562047h "
                        "(about 292 years)"),
])
def test_leader_election_duration_range(value: str, why: str) -> None:
    lines = _lines(data=_data(leader_elect_retry_period=value))
    assert lines == [f"error: leader_elect_retry_period: {value!r} {why}"]


def test_longest_go_duration_passes_the_rule() -> None:
    from kubesmith import rules
    assert rules.duration("2562047h") is None and rules.duration("9223372036854ms") is None


@pytest.mark.parametrize(("role", "longest"), [("nodes", 52), ("masters", 56), ("etcd", 64)])
def test_host_name_length_limited_by_its_certificate_cns(role: str, longest: int) -> None:
    # CNs: system:node:<name> (nodes' kubelet), flannel-<name> (masters' and nodes' flanneld),
    # <name> (an etcd member's serving certificate); X.509 allows 64 characters.
    def name(length: int) -> str:
        return ("h" * 60 + ".example")[-length:].lstrip(".")

    ok, long = name(longest), "x" + name(longest)
    assert len(ok) == longest
    cn = {"nodes": f"system:node:{long}", "masters": f"flannel-{long}", "etcd": long}[role]
    extra = {"etcd": _groups(etcd=[_host("master-1", "192.0.2.10"), _host(ok, "192.0.2.31")]),
             "masters": _groups(masters=[_host("master-1", "192.0.2.10"),
                                         _host(ok, "192.0.2.31")]),
             "nodes": _groups(nodes=[_host(ok, "192.0.2.31")])}
    groups = extra[role]
    assert _lines(groups) in ([], ["warning: etcd: 2 members: quorum: use an odd number (1, 3, 5)"])
    groups = {g: [(long if n == ok else n, d) for n, d in entries] for g, entries in groups.items()}
    errors = [line for line in _lines(groups) if line.startswith("error")]
    assert errors == [f"error: {long!r}: host name makes the certificate CN {cn!r} {len(cn)} "
                      f"characters long: X.509 allows at most 64: use a name of at most "
                      f"{longest} characters for this host's roles"]


def test_every_cn_with_a_host_name_is_checked() -> None:
    # The check reads the certificate table: a host's longest CN is what it reports.
    from kubesmith import certificates
    from kubesmith.model import Cluster, Host
    host = Host("zz", "192.0.2.9", frozenset({"etcd", "masters", "nodes"}))
    cns = {c.spec.common_name for c in certificates.table(Cluster(hosts=(host,)))
           if c.spec is not None and c.hosts == (host,)}
    assert {cn for cn in cns if "zz" in cn} == {"zz", "flannel-zz", "system:node:zz"}


@pytest.mark.parametrize(("dirs", "lines"), [
    ({"etcd_data_dir": "/etc/kubernetes"}, [
        "etcd_data_dir: '/etc/kubernetes' holds pki_dir '/etc/kubernetes/pki'",
        "etcd_data_dir: '/etc/kubernetes' is also kube_config_dir '/etc/kubernetes'"]),
    ({"kube_config_dir": "/etc/kubernetes/pki/conf"},
     ["kube_config_dir: '/etc/kubernetes/pki/conf' is inside pki_dir '/etc/kubernetes/pki'"]),
    ({"kube_config_dir": "/var/lib/etcd/conf", "pki_dir": "/var/lib/etcd/conf/pki"},
     ["pki_dir: '/var/lib/etcd/conf/pki' is inside etcd_data_dir '/var/lib/etcd'",
      "kube_config_dir: '/var/lib/etcd/conf' is inside etcd_data_dir '/var/lib/etcd'"]),
    ({"cni_conf_dir": "/usr/local/bin/cni"},
     ["cni_conf_dir: '/usr/local/bin/cni' is inside bin_dir '/usr/local/bin'"]),
    ({"bin_dir": "/etc/kubernetes/bin"},
     ["bin_dir: '/etc/kubernetes/bin' is inside kube_config_dir '/etc/kubernetes'"]),
    ({"etcd_data_dir": "/var/lib/kubelet/etcd"},
     ["etcd_data_dir: '/var/lib/kubelet/etcd' is inside kubesmith's own directory "
      "/var/lib/kubelet"]),
    ({"kube_config_dir": "/var/lib/kubesmith"},
     ["kube_config_dir: '/var/lib/kubesmith' is also kubesmith's own directory "
      "/var/lib/kubesmith"]),
])
def test_directories_are_neither_equal_nor_nested(dirs: dict, lines: list[str]) -> None:
    rule = ("kubesmith chmods, chowns (etcd_data_dir: chown -R etcd) and resets each on its own: "
            "use separate directories (only pki_dir may be inside kube_config_dir)")
    assert _lines(data=_data(**dirs)) == [f"error: {line}: {rule}" for line in lines]


@pytest.mark.parametrize("dirs", [
    {"pki_dir": "/etc/kubernetes/tls/pki"}, {"pki_dir": "/etc/k8s-pki"},
    {"kube_config_dir": "/etc/k8s", "pki_dir": "/etc/k8s/pki"},
    {"etcd_data_dir": "/srv/etcd"}, {"bin_dir": "/opt/kubesmith/bin"},
])
def test_separate_directories_and_pki_in_the_config_dir_pass(dirs: dict) -> None:
    assert _lines(data=_data(**dirs)) == []


@pytest.mark.parametrize("prefix", ["/registry", "/registry/secrets", "/registry/flannel"])
def test_flannel_prefix_outside_the_apiservers(prefix: str) -> None:
    assert _lines(data=_data(flannel_etcd_prefix=prefix)) == [
        f"error: flannel_etcd_prefix: {prefix!r} is under kube-apiserver's etcd prefix "
        "/registry: flannel's keys and its etcd role would reach the cluster's objects (Secrets "
        "included): use a prefix of its own (e.g. /coreos.com/network)"]


@pytest.mark.parametrize("prefix", ["/registry-flannel", "/registr", "/coreos.com/registry"])
def test_flannel_prefixes_beside_the_apiservers_pass(prefix: str) -> None:
    assert _lines(data=_data(flannel_etcd_prefix=prefix)) == []


def test_the_apiserver_keeps_its_default_etcd_prefix() -> None:
    # The rule above assumes /registry: kube-apiserver's default, which its unit keeps.
    from kubesmith import settings as settings_mod
    text = (settings_mod.PROJECT / "templates" / "controlplane" / "kube-apiserver.service.j2"
            ).read_text()
    assert "--etcd-prefix" not in text


@pytest.mark.parametrize(("dns", "what"), [("10.32.0.0", "network"), ("10.32.0.255", "broadcast")])
def test_cluster_dns_is_an_allocatable_address(dns: str, what: str) -> None:
    assert _lines(data=_data(cluster_dns=dns)) == [
        f"error: cluster_dns: {dns} is service_cidr 10.32.0.0/24's {what} address, which the "
        "apiserver never allocates to a Service: use another address inside it"]
    assert _lines(data=_data(cluster_dns="10.32.0.254")) == []


NUMERIC = ("looks like an IPv4 address but is not one (a.b.c.d, each 0-255, no leading zeros): "
           "resolvers misread such names (010.0.0.100 as 8.0.0.100, 0x10 as 0.0.0.16) or look "
           "them up in DNS")


@pytest.mark.parametrize("host", ["010.0.0.100", "10.0.0.300", "10.0.1", "167772161", "0x10",
                                  "0x0a.0.0.1", "1.2.3.4.5"])
def test_apiserver_endpoint_host_that_only_looks_like_an_ip(host: str) -> None:
    value = f"https://{host}:6443"
    why = NUMERIC if host != "1.2.3.4.5" else None
    lines = _lines(data=_data(apiserver_endpoint=value))
    if why is None:  # five parts: no resolver reads it as an address; a (numeric) DNS name
        assert lines == []
        return
    assert lines == [f"error: apiserver_endpoint: {value!r} names the host {host!r}, which "
                     f"{why}: use https://NAME-OR-IP[:PORT], e.g. https://10.0.0.100:6443"]


@pytest.mark.parametrize("host", ["10.0.0.100", "api.example.com", "k8s-1", "1e3", "0xapi"])
def test_apiserver_endpoint_hosts_that_pass(host: str) -> None:
    assert _lines(data=_data(apiserver_endpoint=f"https://{host}")) == []


def test_ssh_hostname_that_only_looks_like_an_ip() -> None:
    nodes = [_host("node-1", "192.0.2.21", ssh_hostname="192.0.2.021"),
             _host("node-2", "192.0.2.22")]
    assert _lines(_groups(nodes=nodes)) == [
        f"error: node-1: ssh_hostname '192.0.2.021' is neither an IP nor a host name: {NUMERIC}"]
