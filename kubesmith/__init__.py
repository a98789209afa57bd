"""kubesmith: Kubernetes the hard way, automated."""
