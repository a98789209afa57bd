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
# Cluster add-on images (built from Go modules, preloaded like pause).
# CoreDNS: newest served patch of the 1.14 line, which kubeadm's master branch pins since (1.14.4,
# kubernetes/kubeadm#3322); its client-go v0.35 is one minor from the v1.34 apiserver. Not kubeadm
# 1.34's v1.12.1: it lacks the CVE fixes of 1.12.2-1.13.1 (DoQ, x/net). Not v1.15.0: client-go
# v0.37, three minors ahead of the apiserver.
coredns_version = "v1.14.7"
# metrics-server: newest 0.8.x (no 0.8.1 is served); 0.8.x supports Kubernetes 1.31+, i.e. every
# version the proxy serves (1.33-1.36), while 0.9.0 supports only 1.34+.
metrics_server_version = "v0.8.0"
# The local apiserver load balancer of every node: Debian 12 (bookworm)'s haproxy, security
# updates included (its dependencies come at the archive's current versions).
haproxy_version = "2.6.12-1+deb12u4"

# The cluster's name: its control-side state (CAs, keys, kubeconfigs) is state/<cluster_name>/.
# Empty: the inventory file's name (state/lab for inventories/lab.py). Two inventories never
# share a state directory: the first to write one owns it (state/<name>/owner.json).
cluster_name = ""

# Networks.
pod_cidr = "10.200.0.0/16"
service_cidr = "10.32.0.0/24"
cluster_dns = "10.32.0.10"
cluster_domain = "cluster.local"
flannel_vni = 1
flannel_etcd_prefix = "/coreos.com/network"

# Cluster add-ons `up` applies after the nodes are Ready (kubesmith/addons.py lists them): cluster
# DNS at cluster_dns, and the metrics API (`kubectl top`, HorizontalPodAutoscalers). One left out
# is removed from the cluster by the next `up`.
addons = ["coredns", "metrics-server"]

# An external VIP or load balancer in front of every master, as https://NAME-OR-IP[:PORT]
# (empty: none). Its name or address joins the apiserver certificate's SANs and is the server of
# the operator's admin kubeconfig; nodes keep their local balancer (127.0.0.1:6444) either way.
apiserver_endpoint = ""

# Certificate lifetimes (a number and m, h or d). Leaf certificates are renewed by `up` and
# `certs renew` when less than a third of leaf_cert_lifetime is left (verify fails below that
# too). ca_cert_lifetime applies when a CA is made (a new cluster): CAs are never renewed by
# kubesmith (README, Certificates).
leaf_cert_lifetime = "365d"
ca_cert_lifetime = "3650d"

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
