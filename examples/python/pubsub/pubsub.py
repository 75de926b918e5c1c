#!/usr/bin/env python3
"""Publish/subscribe on shmsock: one publisher, each message sealed once for
every subscriber.

    pubsub.py NAME KEYFILE [COUNT] [SUBSCRIBERS]    the publisher
    pubsub.py -s NAME KEYFILE|shmsock-pk:...        a subscriber

The publisher binds topic NAME with the keypair in KEYFILE (created if
missing), prints its public key, waits for SUBSCRIBERS subscribers (default
1), publishes COUNT messages (default 1000) and closes the topic. A subscriber
pins the publisher's key (its key file, or its text) and prints
``received N messages, lost L`` when the topic ends. The same scenario and
command line as examples/rust/src/bin/pubsub.rs and examples/c/pubsub.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Union

import shmsock


def load_or_create(path: Path) -> shmsock.Keypair:
    if not path.exists():
        shmsock.Keypair.generate().save(path)
    return shmsock.Keypair.load(path)


def public_key_arg(arg: str) -> Union[shmsock.PublicKey, str]:
    """A key's text as given, or the public key of a key file."""
    if arg.startswith("shmsock-pk:"):
        return arg
    return shmsock.Keypair.load(arg).public_key


def publish(name: str, key_file: str, count: int, subscribers: int) -> None:
    keypair = load_or_create(Path(key_file))
    print(f"publisher of '{name}', key {keypair.public_key}", flush=True)
    # A reliable topic (the default): every subscriber gets every message.
    with shmsock.Publisher.bind(name, keypair=keypair) as topic:
        topic.wait_for_subscribers(subscribers)
        for i in range(count):
            topic.publish(b"tick %d" % i)
    print(f"published {count} messages", flush=True)


def subscribe(name: str, key: str) -> None:
    with shmsock.Subscriber.connect(name, server_key=public_key_arg(key)) as sub:
        received = sum(1 for _ in sub)  # until the publisher closes the topic
        print(f"received {received} messages, lost {sub.lost}", flush=True)


def main(args: List[str]) -> int:
    try:
        if len(args) == 3 and args[0] == "-s":
            subscribe(args[1], args[2])
        elif 2 <= len(args) <= 4 and args[0] != "-s":
            count = int(args[2]) if len(args) > 2 else 1000
            subscribers = int(args[3]) if len(args) > 3 else 1
            publish(args[0], args[1], count, subscribers)
        else:
            print("usage: pubsub.py NAME KEYFILE [COUNT] [SUBSCRIBERS] | pubsub.py -s NAME SERVER_KEY", file=sys.stderr)
            return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except shmsock.Error as e:
        print(f"error ({e.code}): {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
