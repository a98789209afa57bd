"""Cluster-wide defaults: pinned versions, networks and paths (group data of every host)."""

# Pinned component versions. Binaries are cached per name/version/arch (kubesmith.binaries).
kubernetes_version = "v1.34.4"
etcd_version = "v3.6.16"
flannel_version = "v0.28.4"  # v0.28.10 needs a tencentcloud module the proxy does not serve
flannel_cni_version = "v0.9.1"  # flannel CNI plugin from containernetworking/plugins (see recipes)
cni_plugins_version = "v1.9.1"
containerd_version = "v2.2.9"
runc_version = "v1.3.6"
crictl_version = "v1.34.0"
pause_version = "3.10.1"
busybox_version = "1.35.0"
kube_bench_version = "v0.12.0"  # CIS benchmark runner (deploy.py cis); newest the proxy serves

# Networks.
pod_cidr = "10.200.0.0/16"
service_cidr = "10.32.0.0/24"
cluster_dns = "10.32.0.10"
cluster_domain = "cluster.local"
flannel_vni = 1
flannel_etcd_prefix = "/coreos.com/network"

# Paths on the hosts.
bin_dir = "/usr/local/bin"
cni_bin_dir = "/opt/cni/bin"
cni_conf_dir = "/etc/cni/net.d"
pki_dir = "/etc/kubernetes/pki"
kube_config_dir = "/etc/kubernetes"
etcd_data_dir = "/var/lib/etcd"

# Leader election of kube-controller-manager and kube-scheduler. Upstream's 15 s lease / 10 s
# renew deadline / 2 s retry made both exit ("leaderelection lost", 11 restarts in 20 min) on a
# QEMU VM without KVM, where apiserver and etcd calls take seconds; longer ones (OpenShift uses
# 137/107/26 s) only slow a failover between masters.
leader_elect_lease_duration = "60s"
leader_elect_renew_deadline = "40s"
leader_elect_retry_period = "5s"

# SSH: refuse a host whose key is not in known_hosts (pyinfra's own default, accept-new, would
# trust and pin whoever answers first). Pin a new host's key once with --trust-new-host-keys.
ssh_strict_host_key_checking = "yes"
