"""Example inventory for your own hosts: copy it and fill in names, addresses and SSH access.

`address` is the IP the cluster uses between hosts; `iface` the NIC that carries it (flannel).
"""

_ssh = {"ssh_user": "root", "ssh_key": "~/.ssh/id_ed25519"}

etcd = [
    ("master-1", {"ssh_hostname": "192.0.2.10", "address": "192.0.2.10", "iface": "eth0", **_ssh}),
]
masters = etcd
nodes = [
    ("node-1", {"ssh_hostname": "192.0.2.21", "address": "192.0.2.21", "iface": "eth0", **_ssh}),
    ("node-2", {"ssh_hostname": "192.0.2.22", "address": "192.0.2.22", "iface": "eth0", **_ssh}),
]
