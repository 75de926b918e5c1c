"""Ctrl-C interrupts a large blocking send (issue 17 defect 7), with a real
SIGINT, and never leaves half a message for the peer."""

from __future__ import annotations

import signal
import time
from typing import Callable

from conftest import Child

import shmsock

CHILD = """
import sys
import shmsock

key = shmsock.PublicKey.from_text(sys.argv[2])
stream = shmsock.connect(sys.argv[1], server_key=key, ring_size=64 * 1024)
print("connected", flush=True)
started = None
try:
    print("sending", flush=True)
    stream.send(b"m" * (8 << 20))
    print("sent?!", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    try:
        stream.send(b"after")
        print("usable", flush=True)
    except shmsock.Error as e:
        print("ended", e.code, flush=True)
"""


def test_ctrl_c_interrupts_a_large_send(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    with shmsock.Listener.bind(name, keypair=server_keypair) as listener:
        c = child(CHILD, name, str(server_keypair.public_key))
        with listener.accept(timeout=15) as server:
            c.wait_line("connected")
            c.wait_line("sending")
            # The peer never reads: the send is stuck on a full ring.
            time.sleep(0.3)
            sent_at = time.monotonic()
            c.proc.send_signal(signal.SIGINT)
            c.wait_line("interrupted", timeout=10)
            # Prompt: the core looks at signals at least every ~50 ms (the
            # bound here is generous for a loaded machine).
            assert time.monotonic() - sent_at < 10
            line = c.wait_line("", timeout=10)
            # Part of the message was in the ring: the connection is over.
            assert line == "ended CLOSED", line
            result = c.finish()
            assert result.returncode == 0, result.stderr
            # The server never receives a partial message as a whole one.
            try:
                message = server.recv(timeout=10)
            except shmsock.Error as e:
                assert isinstance(e, (shmsock.PeerClosed, shmsock.PeerGone, shmsock.ProtocolViolation)), e
            else:
                assert len(message) == 8 << 20


def test_ctrl_c_before_anything_was_sent_keeps_the_stream(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    code = """
import sys
import shmsock

key = shmsock.PublicKey.from_text(sys.argv[2])
stream = shmsock.connect(sys.argv[1], server_key=key, ring_size=64 * 1024)
while True:
    try:
        stream.try_send(b"f" * 1000)
    except shmsock.WouldBlock:
        break
print("full", flush=True)
try:
    stream.send(b"x" * 1000)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    stream.send(b"after", timeout=30)
    print("usable", flush=True)
"""
    with shmsock.Listener.bind(name, keypair=server_keypair) as listener:
        c = child(code, name, str(server_keypair.public_key))
        with listener.accept(timeout=15) as server:
            c.wait_line("full")
            time.sleep(0.3)
            c.proc.send_signal(signal.SIGINT)
            c.wait_line("interrupted", timeout=10)
            # Nothing of the interrupted message went out: drain and see "after".
            seen = []
            while True:
                m = server.recv(timeout=10)
                seen.append(m)
                if m == b"after":
                    break
            assert all(m == b"f" * 1000 for m in seen[:-1])
            c.wait_line("usable", timeout=10)
            assert c.finish().returncode == 0
