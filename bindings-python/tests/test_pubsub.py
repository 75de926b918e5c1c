"""shmsock.Publisher and shmsock.Subscriber: round trips to subscribers in other
processes, both slow-subscriber policies, removal, key pinning, oversized
messages, a publisher killed with SIGKILL, closing."""

from __future__ import annotations

import hashlib
import os
import select
import signal
import threading
import time
from typing import Callable, List

import pytest
from conftest import Child

import shmsock

# A subscriber in a child process: prints "subscribed", then one line per
# message (its length and sha256), then how it ended.
SUBSCRIBER = """
import hashlib, sys
import shmsock
name, key = sys.argv[1], sys.argv[2]
with shmsock.Subscriber.connect(name, server_key=key, recv_timeout=20) as sub:
    print("subscribed", sub.cipher, flush=True)
    for message in sub:
        print(len(message), hashlib.sha256(message).hexdigest(), flush=True)
    print("end", sub.received, sub.lost, flush=True)
"""


def payload(i: int) -> bytes:
    """Message i: sizes from 0 to 40000 bytes, contents depending on i."""
    size = (i * 7919) % 40001 if i % 5 else 0
    return bytes((i + j * 31) & 0xFF for j in range(size))


def test_round_trip_to_subscribers_in_other_processes(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    count = 200
    with shmsock.Publisher.bind(name, keypair=server_keypair) as pub:
        subs = [child(SUBSCRIBER, name, server_keypair.public_key.text) for _ in range(3)]
        for s in subs:
            assert s.wait_line("subscribed").split()[1] == pub.cipher
        pub.wait_for_subscribers(3, timeout=10)
        assert pub.subscriber_count == 3
        assert sorted(s.credentials.pid for s in pub.subscribers) == sorted(s.proc.pid for s in subs)
        messages = [payload(i) for i in range(count)]
        for m in messages:
            pub.publish(m)
        assert pub.sequence == count
    expected = [f"{len(m)} {hashlib.sha256(m).hexdigest()}" for m in messages] + [f"end {count} 0"]
    for s in subs:
        result = s.finish(30)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == expected  # after the "subscribed" line


def test_any_buffer_and_recv_into(name: str, server_keypair: shmsock.Keypair) -> None:
    with (
        shmsock.Publisher.bind(name, keypair=server_keypair) as pub,
        shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=5) as sub,
    ):
        pub.wait_for_subscribers(1, timeout=5)
        pub.publish(bytearray(b"bytearray"))
        pub.publish(memoryview(b"xxmemoryviewxx")[2:-2])
        pub.publish(b"")
        pub.publish(b"0123456789")
        assert sub.recv() == b"bytearray"
        buf = bytearray(64)
        n = sub.recv_into(buf)
        assert buf[:n] == b"memoryview"
        assert sub.recv() == b""
        small = bytearray(4)
        with pytest.raises(shmsock.BufferTooSmall) as info:
            sub.recv_into(small)
        assert info.value.needed == 10
        assert sub.try_recv() == b"0123456789"  # the message was kept
        with pytest.raises(shmsock.WouldBlock):
            sub.try_recv()
        with pytest.raises(shmsock.Timeout):
            sub.recv(timeout=0.05)
        assert sub.received == 4 and sub.lost == 0
        assert sub.publisher_public_key == server_keypair.public_key == pub.public_key
        assert sub.epoch == pub.epoch == 1
        assert isinstance(sub.fileno(), int)
        with pytest.raises(TypeError):
            pub.publish("text")  # type: ignore[arg-type]


def test_latest_policy_reports_lost_messages(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.Publisher.bind(name, keypair=server_keypair, slots=4, policy="latest") as pub:
        assert pub.policy == "latest" and pub.reliable_timeout is None
        with shmsock.Subscriber.connect(name, server_key=server_keypair.public_key, recv_timeout=5) as sub:
            pub.wait_for_subscribers(1, timeout=5)
            for i in range(20):  # never waits, although nobody reads
                pub.publish(b"%d" % i)
            got = [sub.recv() for _ in range(4)]
            assert got == [b"16", b"17", b"18", b"19"]  # the newest, whole
            assert sub.lost == 16 and sub.received == 4
            assert pub.dropped_count == 0


def test_reliable_policy_drops_a_subscriber_that_never_reads(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    stalled = child(
        """
        import sys, time, shmsock
        sub = shmsock.Subscriber.connect(sys.argv[1], server_key=sys.argv[2])
        print("subscribed", flush=True)
        time.sleep(60)
        """,
        name,
        server_keypair.public_key.text,
    )
    with shmsock.Publisher.bind(name, keypair=server_keypair, slots=4, reliable_timeout=0.2) as pub:
        with shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=5) as reader:
            stalled.wait_line("subscribed")
            pub.wait_for_subscribers(2, timeout=10)
            received: List[bytes] = []
            for i in range(10):
                pub.publish(b"%d" % i)
                received.append(reader.recv())
            assert received == [b"%d" % i for i in range(10)]
            assert pub.dropped_count == 1 and pub.subscriber_count == 1
            assert pub.epoch > 1  # the key changed when the slow one was dropped


def test_subscribers_that_stall_hold_at_most_their_uids_handshake_places(
    name: str, server_keypair: shmsock.Keypair
) -> None:
    """``max_pending_handshakes_per_uid`` reaches the topic: a client that sent
    its SUBSCRIBE and goes no further holds the uid's one place, so the next
    subscriber of the uid is refused at once; once it gives up, one gets in."""
    key = server_keypair.public_key
    with shmsock.Publisher.bind(name, keypair=server_keypair, max_pending_handshakes_per_uid=1) as publisher:
        stalled = shmsock.Subscriber._subscribe_start(name, server_key=key)
        with pytest.raises(shmsock.ResourceExhausted, match="at its limit of 1 subscribers joining"):
            shmsock.Subscriber.connect(name, server_key=key)
        stalled.close()
        deadline = time.monotonic() + 5
        while True:  # the publisher notices the departure on its own thread
            try:
                subscriber = shmsock.Subscriber.connect(name, server_key=key)
                break
            except shmsock.ResourceExhausted:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        with subscriber:
            publisher.wait_for_subscribers(1, timeout=5)
            publisher.publish(b"in")
            assert subscriber.recv(timeout=5) == b"in"


def test_wrong_publisher_key_is_refused(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.Publisher.bind(name, keypair=server_keypair):
        with pytest.raises(shmsock.ServerKeyMismatch):
            shmsock.Subscriber.connect(name, server_key=shmsock.Keypair.generate().public_key)
        with pytest.raises(shmsock.InvalidKey):
            shmsock.Subscriber.connect(name, server_key="shmsock-pk:nope")
    with pytest.raises(shmsock.NotFound):
        shmsock.Subscriber.connect(name, server_key=server_keypair.public_key)


def test_oversized_publish_is_refused_and_the_topic_stays_usable(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.Publisher.bind(name, keypair=server_keypair, max_message_size=1024) as pub:
        with shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=5) as sub:
            pub.wait_for_subscribers(1, timeout=5)
            with pytest.raises(shmsock.MessageTooLarge) as info:
                pub.publish(bytes(1025))
            assert "1024" in str(info.value)
            assert pub.sequence == 0
            pub.publish(bytes(1024))
            assert sub.recv() == bytes(1024)
    with shmsock.Publisher.bind(name, keypair=server_keypair, max_message_size=4096):
        with pytest.raises(shmsock.MessageTooLarge):  # the subscriber accepts less
            shmsock.subscribe(name, server_key=server_keypair.public_key, max_message_size=1024)


def test_bad_topic_options_are_value_errors(name: str, server_keypair: shmsock.Keypair) -> None:
    for options in (
        {"policy": "fastest"},
        {"slots": 3},
        {"reliable_timeout": 0},
        {"policy": "latest", "reliable_timeout": 1.0},
        {"rekey_interval": 0},
        {"max_subscribers": 0},
    ):
        with pytest.raises(ValueError):
            shmsock.Publisher.bind(name, keypair=server_keypair, **options)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        shmsock.Publisher.bind(name, keypair="not a keypair")  # type: ignore[arg-type]
    with shmsock.Publisher.bind(name, keypair=server_keypair, rekey_interval=None) as pub:
        with pytest.raises(shmsock.AddressInUse):
            shmsock.Publisher.bind(name, keypair=server_keypair)
        with pytest.raises(shmsock.Timeout):
            pub.wait_for_subscribers(1, timeout=0.05)


def test_publisher_killed_subscriber_gets_an_error(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    key_file = f"/tmp/{name}.key"
    server_keypair.save(key_file)
    try:
        publisher = child(
            """
            import sys, time, shmsock
            pub = shmsock.Publisher.bind(sys.argv[1], keypair=shmsock.Keypair.load(sys.argv[2]))
            print("bound", flush=True)
            pub.wait_for_subscribers(1, timeout=10)
            pub.publish(b"first")
            print("published", flush=True)
            time.sleep(60)
            """,
            name,
            key_file,
        )
        publisher.wait_line("bound")
        with shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=10) as sub:
            publisher.wait_line("published")
            assert sub.recv() == b"first"
            os.kill(publisher.proc.pid, signal.SIGKILL)
            with pytest.raises((shmsock.PeerGone, shmsock.PeerClosed)):
                sub.recv()  # an error well before the 10 s timeout, not a hang
            with pytest.raises(shmsock.Error):
                sub.recv(timeout=0)  # and again
    finally:
        os.unlink(key_file)


def test_removed_subscriber_cannot_read_later_messages(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.Publisher.bind(name, keypair=server_keypair) as pub:
        with (
            shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=5) as gone,
            shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=5) as stays,
        ):
            pub.wait_for_subscribers(2, timeout=5)
            pub.publish(b"before")
            assert gone.recv() == b"before" and stays.recv() == b"before"
            victim = [s for s in pub.subscribers if s.public_key == gone.local_public_key]
            assert len(victim) == 1
            pub.remove(victim[0].id)
            assert pub.subscriber_count == 1 and pub.epoch == 2
            pub.publish(b"after")
            assert stays.recv() == b"after"
            with pytest.raises(shmsock.Error) as info:
                gone.recv()
            assert not isinstance(info.value, shmsock.Timeout)
            with pytest.raises(shmsock.NotFound):
                pub.remove(victim[0].id)


def test_closing_twice_and_using_closed_objects(name: str, server_keypair: shmsock.Keypair) -> None:
    pub = shmsock.Publisher.bind(name, keypair=server_keypair)
    sub = shmsock.Subscriber.connect(name, server_key=server_keypair.public_key, recv_timeout=5)
    pub.wait_for_subscribers(1, timeout=5)
    pub.publish(b"last")
    pub.close()
    pub.close()
    assert pub.closed and "closed" in repr(pub)
    with pytest.raises(shmsock.Closed):
        pub.publish(b"x")
    with pytest.raises(shmsock.Closed):
        _ = pub.subscriber_count
    assert list(sub) == [b"last"]  # everything published before the end, then the end
    with pytest.raises(shmsock.PeerClosed):
        sub.recv()
    sub.close()
    sub.close()
    assert sub.closed
    with pytest.raises(shmsock.Closed):
        sub.recv()
    with pytest.raises(shmsock.Closed):
        sub.fileno()
    # The name is free again at once.
    shmsock.Publisher.bind(name, keypair=server_keypair).close()


def test_closing_wakes_a_blocked_receive(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.Publisher.bind(name, keypair=server_keypair):
        sub = shmsock.subscribe(name, server_key=server_keypair.public_key)
        errors: List[BaseException] = []

        def receive() -> None:
            try:
                sub.recv(timeout=20)
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=receive)
        t.start()
        time.sleep(0.1)  # usually blocked by now; Closed either way
        sub.close()
        t.join(10)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], shmsock.Closed)


def test_publish_with_no_subscriber_and_rotation(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.Publisher.bind(name, keypair=server_keypair, require_chacha=True) as pub:
        assert pub.cipher == "chacha20-poly1305"
        pub.publish(b"nobody listens")
        pub.rotate_key()
        assert pub.epoch == 2
        with shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=5) as sub:
            pub.wait_for_subscribers(1, timeout=5)
            pub.publish(b"one")
            pub.rotate_key()
            pub.publish(b"two")
            assert [sub.recv(), sub.recv()] == [b"one", b"two"]
            assert sub.epoch == 3 and sub.cipher == "chacha20-poly1305"
            assert "received=2" in repr(sub)


def test_garbage_collected_publisher_ends_the_topic(name: str, server_keypair: shmsock.Keypair) -> None:
    import gc

    pub = shmsock.Publisher.bind(name, keypair=server_keypair)
    sub = shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=10)
    pub.wait_for_subscribers(1, timeout=5)
    pub.publish(b"bye")
    del pub
    gc.collect()
    assert list(sub) == [b"bye"]  # then the end of the topic, not a hang
    shmsock.Publisher.bind(name, keypair=server_keypair).close()  # the name is free
    sub.close()


def test_wrong_argument_types(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.Publisher.bind(name, keypair=server_keypair) as pub:
        with pytest.raises(TypeError):
            pub.wait_for_subscribers(1, timeout="soon")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            pub.wait_for_subscribers(1, timeout=-1)
        with shmsock.subscribe(name, server_key=server_keypair.public_key) as sub:
            with pytest.raises(TypeError):
                sub.recv(timeout="1")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                sub.recv_into(b"read-only")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            shmsock.subscribe(name)  # type: ignore[call-arg]


def test_subscriber_killed_publisher_carries_on(
    name: str, server_keypair: shmsock.Keypair, child: Callable[..., Child]
) -> None:
    from conftest import wait_for

    with shmsock.Publisher.bind(name, keypair=server_keypair, slots=4, reliable_timeout=30) as pub:
        victim = child(SUBSCRIBER, name, server_keypair.public_key.text)
        victim.wait_line("subscribed")
        pub.wait_for_subscribers(1, timeout=10)
        os.kill(victim.proc.pid, signal.SIGKILL)
        # Its departure is seen at once (its socket closes): the key rotates
        # and a reliable publish no longer waits for it.
        assert wait_for(lambda: pub.subscriber_count == 0, timeout=10)
        assert wait_for(lambda: pub.epoch == 2, timeout=10)
        for i in range(10):  # more than the 4 slots; would wait 30 s for it
            pub.publish(b"%d" % i)
        assert pub.dropped_count == 0


def test_try_publish_would_block_until_a_subscriber_moves_on(name: str, server_keypair: shmsock.Keypair) -> None:
    with shmsock.Publisher.bind(name, keypair=server_keypair, slots=2, reliable_timeout=60) as pub:
        with shmsock.subscribe(name, server_key=server_keypair.public_key, recv_timeout=5) as sub:
            pub.wait_for_subscribers(1, timeout=5)
            pub.try_publish(b"0")
            pub.try_publish(b"1")
            assert pub.publish_deadline is None
            with pytest.raises(shmsock.WouldBlock):
                pub.try_publish(b"2")
            left = pub.publish_deadline
            assert left is not None and 0 < left <= 60
            assert select.select([pub], [], [], 0)[0] == []
            assert sub.recv() == b"0"
            assert select.select([pub], [], [], 5)[0] == [pub]
            pub.try_publish(b"2")
            assert pub.publish_deadline is None
            assert [sub.recv(), sub.recv()] == [b"1", b"2"]


def test_subscribe_waits_for_the_publisher(name: str, server_keypair: shmsock.Keypair) -> None:
    with pytest.raises(shmsock.NotFound):
        shmsock.subscribe(name, server_key=server_keypair.public_key, wait=0.1)
    subscribed: List[shmsock.Subscriber] = []
    connecting = threading.Thread(
        target=lambda: subscribed.append(shmsock.subscribe(name, server_key=server_keypair.public_key, wait=30))
    )
    connecting.start()
    with shmsock.Publisher.bind(name, keypair=server_keypair) as pub:
        connecting.join(30)
        assert not connecting.is_alive() and len(subscribed) == 1
        with subscribed[0] as sub:
            pub.publish(b"hello")
            assert sub.recv(timeout=10) == b"hello"
