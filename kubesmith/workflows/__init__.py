"""One module per workflow (up, add-node, add-etcd, add-master, remove-node, reset, cis), each
built from the phase runner, the shared steps and the etcd membership helper."""
