"""``wait=`` on connect (the core's ``Options::connect_wait``): it ends with
NotFound, never retries other errors, refuses waits over a day, and Ctrl-C
interrupts it."""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

import pytest
from conftest import Child

import shmsock


def test_a_wait_that_ends_raises_not_found(name: str, server_keypair: shmsock.Keypair) -> None:
    started = time.monotonic()
    with pytest.raises(shmsock.NotFound):
        shmsock.connect(name, server_key=server_keypair.public_key, wait=0.2)
    assert time.monotonic() - started >= 0.2


def test_a_wrong_server_key_is_not_retried(name: str, server_keypair: shmsock.Keypair) -> None:
    done = threading.Event()

    def serve(listener: shmsock.Listener) -> None:
        # Runs handshakes (each one fails) until the client has its answer.
        while not done.is_set():
            try:
                listener.accept(timeout=0.05).close()
            except shmsock.Error:
                pass

    with shmsock.Listener.bind(name, keypair=server_keypair) as listener:
        t = threading.Thread(target=serve, args=(listener,))
        t.start()
        started = time.monotonic()
        try:
            with pytest.raises(shmsock.ServerKeyMismatch):
                shmsock.connect(name, server_key=shmsock.Keypair.generate().public_key, wait=60)
        finally:
            done.set()
            t.join(30)
        # Retried, it would only end with the wait (60 s).
        assert time.monotonic() - started < 30


def test_a_wait_over_a_day_is_refused(name: str, server_keypair: shmsock.Keypair) -> None:
    with pytest.raises(ValueError, match="connect wait"):
        shmsock.connect(name, server_key=server_keypair.public_key, wait=2 * 86400)


def test_ctrl_c_interrupts_a_connect_wait(name: str, child: Callable[..., Child]) -> None:
    code = """
import sys
import shmsock

key = shmsock.Keypair.generate().public_key
print("waiting", flush=True)
try:
    shmsock.connect(sys.argv[1], server_key=key, wait=600)
    print("connected?!", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""
    c = child(code, name)
    c.wait_line("waiting")
    time.sleep(0.3)
    sent_at = time.monotonic()
    c.proc.send_signal(signal.SIGINT)
    c.wait_line("interrupted", timeout=30)
    # Prompt: slices of ~50 ms (the bound is generous for a loaded machine).
    assert time.monotonic() - sent_at < 30
    assert c.finish().returncode == 0
