"""Ctrl-C stops a workflow even when the signal comes while an SSH transport's thread (a
greenlet under gevent) runs: run for real in a child process that signals itself."""

from __future__ import annotations

import subprocess
import sys

from kubesmith.settings import PROJECT

CHILD = """
import sys
from gevent import monkey
monkey.patch_all()
import os, signal, threading, time
from kubesmith import cli
if sys.argv[1] == "handled":
    cli.ctrl_c_stops_the_workflow()

def transport():  # busy like paramiko's reader thread, which catches Exception
    while True:
        try:
            sum(range(100000))
            time.sleep(0)
        except Exception:
            pass

threading.Thread(target=transport, daemon=True).start()
threading.Thread(target=lambda: (time.sleep(0.5), os.kill(os.getpid(), signal.SIGINT)),
                 daemon=True).start()
try:
    for _ in range(30):
        sum(range(200000))
        time.sleep(0.05)
    print("workflow went on to the end")
except KeyboardInterrupt:
    print("workflow stopped")
"""


def _child(mode: str) -> str:
    return subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                          timeout=60, cwd=PROJECT, check=False).stdout.strip()


def test_ctrl_c_reaches_the_workflow() -> None:
    assert _child("handled") == "workflow stopped"


def test_without_the_handler_a_transport_thread_can_swallow_it() -> None:
    """The failure the handler fixes (the test above would prove nothing if this passed)."""
    results = {_child("default") for _ in range(3)}
    assert "workflow went on to the end" in results
