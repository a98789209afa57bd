"""kubesmith's one entry point: `python deploy.py COMMAND` (see --help; kubesmith/cli.py).

Also a plain pyinfra deploy file: `pyinfra inventories/lab.py deploy.py` runs the bootstrap's
phases, from the phase table in tasks/phases.py.
"""

if __name__ == "__main__":
    from kubesmith.cli import main

    raise SystemExit(main())
else:  # executed by pyinfra's CLI, once per host
    from kubesmith.pyinfra_cli import context
    from tasks.phases import pyinfra_cli

    pyinfra_cli(context())
