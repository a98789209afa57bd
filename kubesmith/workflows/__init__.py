"""One module per workflow (up, add-node, add-etcd, add-master, remove-node, reset, cis,
rotate-encryption-key), each built from the phase runner, the shared steps and the etcd
membership helper."""
