"""pyinfra tasks: one module per component, each run per host by kubesmith.deployer."""
