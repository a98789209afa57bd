"""pyinfra tasks: one module per component, run per host in the phases of tasks/phases.py."""
