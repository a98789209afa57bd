"""Inventory of the Vagrant machines (`vagrant up` first): SSH from `vagrant ssh-config`."""

import os
from pathlib import Path

from kubesmith.vagrant import dotfile_dir, groups, machines, ssh_config_from_vagrant

_project = Path(__file__).resolve().parent.parent
_machines = machines(_project / "vagrant" / "settings.json", os.environ)
_groups = groups(
    ssh_config_from_vagrant(_project),
    _machines,
    dotfile_dir(_project, os.environ) / "kubesmith_known_hosts",
)
etcd = _groups["etcd"]
masters = _groups["masters"]
nodes = _groups["nodes"]
