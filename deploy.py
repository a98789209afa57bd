"""kubesmith's one entry point: `python deploy.py COMMAND` (see --help).

Also a plain pyinfra deploy file: `pyinfra inventories/lab.py deploy.py` bootstraps the cluster.
"""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in ("up", "add-node", "remove-node", "reset", "cis"):
        from gevent import monkey  # pyinfra's API runs hosts in parallel on gevent

        monkey.patch_all()
    from kubesmith.cli import main

    raise SystemExit(main())
else:  # executed by pyinfra's CLI, once per host
    from tasks.cluster import run

    run()
