"""The services kubesmith runs: the hosts that run each, the ports it holds and its binaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubesmith import paths
from kubesmith.binaries.recipes import COMPONENTS

APISERVER_PORT = 6443
# Each node's local apiserver balancer, on 127.0.0.1 only. Not 6443: on a host that is master and
# node the apiserver holds 0.0.0.0:6443, 127.0.0.1 included; one port on every host keeps every
# node kubeconfig the same.
APISERVER_LB_PORT = 6444
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
FLANNEL_VXLAN_PORT = 8472
# The binary mirror on the first master (tasks/mirror.py), only while a workflow installs binaries.
MIRROR_PORT = 6445


@dataclass(frozen=True)
class Service:
    """One systemd service: the Cluster role running it, its ports, its binaries by component."""

    name: str
    role: str
    ports: tuple[str, ...]
    binaries: tuple[tuple[str, tuple[str, ...]], ...]
    process: str = ""  # the name its listening process has, when not the service's name
    # What the running service makes on its host besides kubesmith's own files, recorded in the
    # host's manifest before its first start (kubesmith.manifest kinds): its state directories
    # and network links (when absent, or empty, before), iptables chain prefixes, slices. A
    # value may name group data in braces ({flannel_vni}): made() fills it in.
    makes: tuple[tuple[str, str], ...] = ()

    def made(self, data: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
        """What it makes on this cluster's hosts: makes, with the group data they name."""
        return tuple((kind, value.format_map(data)) for kind, value in self.makes)

    @property
    def files(self) -> tuple[str, ...]:
        """Every binary file name this service installs."""
        return tuple(f for _component, files in self.binaries for f in files)


SERVICES = {s.name: s for s in (
    Service("etcd", "etcd", (f"tcp/{ETCD_CLIENT_PORT}", f"tcp/{ETCD_PEER_PORT}"),
            (("etcd", ("etcd", "etcdctl", "etcdutl")),)),
    Service("kube-apiserver", "masters", (f"tcp/{APISERVER_PORT}",),
            (("kubernetes", ("kube-apiserver", "kubectl")),)),
    Service("kube-controller-manager", "masters", ("tcp/10257",),
            (("kubernetes", ("kube-controller-manager",)),)),
    Service("kube-scheduler", "masters", ("tcp/10259",), (("kubernetes", ("kube-scheduler",)),)),
    Service("flanneld", "pod_hosts", (f"udp/{FLANNEL_VXLAN_PORT}",),
            (("flannel", ("flanneld",)),),
            makes=(("dir", paths.FLANNEL_RUN_DIR), ("link", paths.FLANNEL_DEVICE),
                   ("chain", "FLANNEL-"))),
    # The CNI plugins containerd runs make the pods' bridge, IPAM state and portmap chains.
    Service("containerd", "nodes", (),
            (("containerd", COMPONENTS["containerd"].files), ("runc", ("runc",)),
             ("crictl", ("crictl",))),
            makes=(("dir", paths.CONTAINERD_DIR), ("dir", "/run/containerd"),
                   ("dir", "/var/lib/cni"), ("dir", "/run/netns"), ("link", "cni0"),
                   ("chain", "CNI-"))),
    Service("kubelet", "nodes", ("tcp/10250",), (("kubernetes", ("kubelet",)),),
            makes=(("dir", "/var/log/pods"), ("dir", "/var/log/containers"),
                   ("slice", "kubepods.slice"), ("chain", "KUBE-"))),
    Service("kube-proxy", "nodes", ("tcp/10256",), (("kubernetes", ("kube-proxy",)),),
            makes=(("chain", "KUBE-"),)),
    # haproxy from Debian packages (component "haproxy"), not from bin_dir; started before kubelet.
    Service("apiserver-lb", "nodes", (f"tcp/{APISERVER_LB_PORT}",), (), "haproxy"),
)}


# Binaries a service installed before and no longer does, removed from a host where no service
# of its roles installs them: kubectl on nodes (59 MiB each; kubesmith and the operator run it
# from the control machine, masters keep one).
RETIRED = ("kubectl",)


def of_role(role: str) -> tuple[Service, ...]:
    """The services that hosts of a role run, in start order."""
    return tuple(s for s in SERVICES.values() if s.role == role)


def retired(groups: frozenset[str]) -> tuple[str, ...]:
    """The retired binaries a host in these groups has no service for."""
    kept = {f for s in SERVICES.values() if s.role in groups for f in s.files}
    return tuple(f for f in RETIRED if f not in kept)
