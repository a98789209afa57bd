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


def test_service_cidr_without_room_for_the_vip() -> None:
    lines = _lines(data=_data(service_cidr="10.32.0.10/32"))
    assert lines == ["error: service_cidr: 10.32.0.10/32 has no room for the service VIP: "
                     "use e.g. a /24"]


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
