"""Fixed paths on the hosts (the configurable directories are group data: bin_dir, pki_dir…)."""

UNIT_DIR = "/etc/systemd/system"
STATE_DIR = "/var/lib/kubesmith"
IMAGE_DIR = f"{STATE_DIR}/images"
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
# A host's resolvers, then systemd-resolved's upstream list (when /etc/resolv.conf is its stub).
RESOLV_CONFS = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf")


def unit(service: str) -> str:
    """The unit file of a service kubesmith writes."""
    return f"{UNIT_DIR}/{service}.service"
