"""kubesmith's one entry point: `python deploy.py COMMAND` (see --help)."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in ("up",):
        from gevent import monkey  # pyinfra's API runs hosts in parallel on gevent

        monkey.patch_all()
    from kubesmith.cli import main

    raise SystemExit(main())
