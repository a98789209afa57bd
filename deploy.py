"""kubesmith's one entry point: `python deploy.py COMMAND` (see --help)."""

from kubesmith.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
