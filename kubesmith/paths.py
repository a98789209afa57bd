"""Fixed paths on the hosts (the configurable directories are group data: bin_dir, pki_dir…)."""

from collections.abc import Mapping

UNIT_DIR = "/etc/systemd/system"
STATE_DIR = "/var/lib/kubesmith"
IMAGE_DIR = f"{STATE_DIR}/images"
# The sha256 of each file kubesmith uploaded, with the inode, ctime (to the nanosecond) and size
# it had in place: while all three are the same, so is the file (any write or rename changes the
# ctime), and a re-run takes the sum from here instead of reading hundreds of MB of binaries.
SUMS = f"{STATE_DIR}/sums"
# stat's format of what is recorded with each sum there: inode, ctime and size (a line is
# `sha256 <that> path`).
SUMS_IDENTITY = "%i %z %s"
# Where a phase's small files arrive as one archive, unpacked beside their destinations.
UPLOAD_ARCHIVE = f"{STATE_DIR}/files.tar.kubesmith-upload"
LOG_DIR = "/var/log/kubernetes"
SYSCTL = "/etc/sysctl.d/90-kubesmith.conf"
MODULES = "/etc/modules-load.d/kubesmith.conf"
KUBELET_DIR = "/var/lib/kubelet"
KUBE_PROXY_DIR = "/var/lib/kube-proxy"
CONTAINERD_CONF_DIR = "/etc/containerd"
CONTAINERD_DIR = "/var/lib/containerd"
CRICTL_CONF = "/etc/crictl.yaml"
FLANNEL_RUN_DIR = "/run/flannel"
FLANNEL_SUBNET_ENV = f"{FLANNEL_RUN_DIR}/subnet.env"
# flanneld's vxlan device: flanneld names it after its VXLAN id (flannel_vni in group data).
FLANNEL_DEVICE = "flannel.{flannel_vni}"
# Debian packages kubesmith installs from local files (per component), and the node balancer's
# runtime directory (systemd's RuntimeDirectory=) with its root-only stats socket (HTTP, CSV).
DEB_DIR = f"{STATE_DIR}/debs"
# The binary mirror on the first master (tasks/mirror.py): artifacts named by sha256, its server.
MIRROR_DIR = f"{STATE_DIR}/mirror"
MIRROR_SCRIPT = f"{STATE_DIR}/mirror.py"
MIRROR_UNIT = "kubesmith-mirror"
# The scheduled etcd backup's script (`deploy.py backup --schedule`; its units: tasks/backup.py).
BACKUP_SCRIPT = f"{STATE_DIR}/etcd-backup.sh"
APISERVER_LB_RUN_DIR = "/run/apiserver-lb"
APISERVER_LB_STATS = f"{APISERVER_LB_RUN_DIR}/stats.sock"
# Debian's own haproxy unit, masked: kubesmith runs the balancer under apiserver-lb.service.
HAPROXY_DEBIAN_UNIT = "/etc/systemd/system/haproxy.service"
# The unit Debian's haproxy package ships (present only where that package was installed).
HAPROXY_PACKAGE_UNIT = "/lib/systemd/system/haproxy.service"
# Its SysV init script: left out of the install (dpkg --path-exclude), so that the postinst
# does not register it with update-rc.d (a systemd reload of its own) on a systemd host.
HAPROXY_INIT_SCRIPT = "/etc/init.d/haproxy"
# A host's resolvers, then systemd-resolved's upstream list (when /etc/resolv.conf is its stub).
RESOLV_CONFS = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf")


def unit(service: str) -> str:
    """The unit file of a service kubesmith writes."""
    return f"{UNIT_DIR}/{service}.service"


def flannel_device(data: Mapping[str, object]) -> str:
    """flanneld's vxlan device on this cluster's hosts."""
    return FLANNEL_DEVICE.format_map(data)
