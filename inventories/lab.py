"""Inventory of the local lab (`python deploy.py lab up`): read from the lab's state on disk."""

from kubesmith.lab.inventory import groups

_groups = groups()
etcd = _groups["etcd"]
masters = _groups["masters"]
nodes = _groups["nodes"]
