#!/usr/bin/env python3
"""The publish/subscribe interop matrix: every language's publisher to every
language's subscriber, and one publisher with subscribers in all five
languages at once.

For each of the 25 ordered (publisher, subscriber) pairs of Rust, C, C++,
Python and Node agents, the publisher sends 100 messages of 0 B to 64 KiB on a
reliable topic and the subscriber checks every one byte for byte, the
publisher's key, the cipher, and that none was lost. Then, for each language as
publisher (the cipher alternating), five subscribers, one per language, receive
the same messages at once. Per subscriber language, pinning the wrong key is
refused, and a publisher killed with SIGKILL mid-topic ends the subscriber
with PEER_GONE. Prints the 5x5 matrix; exits 1 if anything failed or anything
was left behind. The agents' command line is in README.md.

    python3 tests/interop/topics.py [--no-build] [--only rust,python] [--keep]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    LABELS,
    Agent,
    HarnessError,
    Session,
    ciphers,
    fields,
    log,
    main_guard,
    matrix_main,
)

SIZES = (0, 1, 64, 4096, 65536)
COUNT = 100


def keygen(session: Session, language: str, name: str) -> Tuple[str, str]:
    """A key file saved by `language`'s agent: (path, shmsock-pk text)."""
    path = str(session.path("keys", f"{name}.key"))
    result = session.run(language, ["keygen", path], f"keygen-{name}", timeout=30)
    line = result.line("public ")
    if result.code != 0 or line is None:
        raise HarnessError(f"{LABELS[language]} keygen {name}: {result.describe()}")
    return path, line.split()[1]


def start_publisher(
    session: Session, language: str, name: str, key: str, subscribers: int, cipher: str, count: int, tag: str
) -> Tuple[Agent, str]:
    """Starts a publisher and waits for its `ready` line: (agent, fingerprint)."""
    args = [
        "publish",
        "--name",
        name,
        "--key",
        key,
        "--subscribers",
        str(subscribers),
        "--count",
        str(count),
        "--sizes",
        ",".join(map(str, SIZES)),
        "--cipher",
        cipher,
        "--timeout",
        "30",
    ]
    agent = session.start(language, args, f"publish-{tag}")
    line = agent.wait_line(lambda s: s.startswith("ready "), timeout=30)
    if line is None:
        reason = agent.stderr_tail() or "no 'ready' line within 30 s"
        agent.kill()
        raise HarnessError(f"the {LABELS[language]} publisher did not start: {reason}")
    return agent, ([*line.split(), "", "", "", ""])[3]


def subscriber_args(name: str, public: str, cipher: str, count: int) -> List[str]:
    return [
        "subscribe",
        "--name",
        name,
        "--server-key",
        public,
        "--cipher",
        cipher,
        "--count",
        str(count),
        "--sizes",
        ",".join(map(str, SIZES)),
        "--timeout",
        "30",
    ]


def finish(agent: Agent, timeout: float) -> Tuple[Optional[int], str]:
    """Waits for an agent that ends by itself: (exit code or None, last stderr line)."""
    try:
        code: Optional[int] = agent.process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    agent.kill()
    return code, agent.stderr_tail()


def run_topic(
    session: Session,
    publisher: str,
    subscribers: Sequence[str],
    cipher: str,
    key: str,
    public: str,
    tag: str,
    count: int = COUNT,
) -> List[str]:
    """One publisher, one subscriber per entry of `subscribers`, `count`
    messages; the problems found."""
    name = f"interop-topic-{os.getpid()}-{tag}"
    pub, fingerprint = start_publisher(session, publisher, name, key, len(subscribers), cipher, count, tag)
    subs = []
    problems = []
    for language in subscribers:
        agent = session.start(language, subscriber_args(name, public, cipher, count), f"subscribe-{tag}-{language}")
        subs.append((language, agent))
        # One at a time: the publisher starts once all of them are in.
        if agent.wait_line(lambda s: s.startswith("subscribed "), timeout=30) is None:
            problems.append(f"{LABELS[language]} subscriber did not subscribe: {agent.stderr_tail()}")
    expected = {
        "cipher": cipher,
        "publisher": fingerprint,
        "messages": str(count),
        "bytes": str(sum(SIZES[i % len(SIZES)] for i in range(count))),
        "lost": "0",
    }
    for language, agent in subs:
        code, tail = finish(agent, 60)
        line = next((s for s in agent.lines if s.startswith("ok ")), None)
        if code != 0 or line is None:
            problems.append(f"{LABELS[language]} subscriber: {describe(code, tail)}")
            continue
        got = fields(line)
        for field_name, value in expected.items():
            if got.get(field_name) != value:
                problems.append(
                    f"{LABELS[language]} subscriber reported {field_name}={got.get(field_name)}, expected {value}"
                )
    code, tail = finish(pub, 60)
    published = next((s for s in pub.lines if s.startswith("published ")), None)
    if code != 0 or published is None:
        problems.append(f"{LABELS[publisher]} publisher: {describe(code, tail)}")
    elif fields(published).get("messages") != str(count):
        problems.append(f"{LABELS[publisher]} publisher said '{published}'")
    return problems


def describe(code: Optional[int], detail: str) -> str:
    how = "timed out (killed)" if code is None else f"killed by signal {-code}" if code < 0 else f"exit {code}"
    return f"{how}: {detail}" if detail else how


def check_wrong_key(
    session: Session, publisher: str, subscriber: str, key: str, public: str, wrong_public: str
) -> List[str]:
    """A subscriber pinning a key the publisher does not hold is refused, and
    the topic then serves a subscriber pinning the right one."""
    tag = f"wrong-{publisher}-{subscriber}"
    name = f"interop-topic-{os.getpid()}-{tag}"
    pub, _ = start_publisher(session, publisher, name, key, 1, ciphers()[0], 1, tag)
    result = session.run(subscriber, subscriber_args(name, wrong_public, ciphers()[0], 1), tag, timeout=30)
    problems = []
    if result.code != 3 or "error SERVER_KEY_MISMATCH" not in result.stderr:
        problems.append(
            "a subscriber pinning the wrong key should exit 3 with 'error SERVER_KEY_MISMATCH', "
            f"but: {result.describe()}"
        )
    after = session.run(subscriber, subscriber_args(name, public, ciphers()[0], 1), f"{tag}-then-right", timeout=30)
    if after.code != 0:
        problems.append(f"after the refusal, a subscriber pinning the right key: {after.describe()}")
    code, tail = finish(pub, 30)
    if code != 0:
        problems.append(f"after the refusal, the publisher: {describe(code, tail)}")
    return problems


def check_publisher_killed(session: Session, publisher: str, subscriber: str, key: str, public: str) -> Optional[str]:
    """SIGKILL of the publisher mid-topic: the subscriber ends with PEER_GONE."""
    name = f"interop-topic-{os.getpid()}-kill-{publisher}-{subscriber}"
    tag = f"kill-{publisher}-{subscriber}"
    endless = 1 << 30
    pub, _ = start_publisher(session, publisher, name, key, 1, ciphers()[0], endless, tag)
    sub = session.start(subscriber, subscriber_args(name, public, ciphers()[0], endless), f"subscribe-{tag}")
    if sub.wait_line(lambda s: s.startswith("subscribed "), timeout=30) is None:
        pub.kill()
        return f"the subscriber did not subscribe: {sub.stderr_tail()}"
    os.killpg(pub.process.pid, signal.SIGKILL)
    pub.kill()
    code, tail = finish(sub, 30)
    if code != 3 or "error PEER_GONE" not in tail:
        return f"the subscriber should exit 3 with 'error PEER_GONE', but: {describe(code, tail)}"
    # The dead publisher's name is reclaimed by the next bind (which also
    # removes what it left in the runtime directory when that one closes).
    problems = run_topic(session, publisher, [subscriber], ciphers()[0], key, public, tag, count=1)
    return "; ".join(f"after the kill: {p}" for p in problems) or None


def print_matrix(languages: Sequence[str], cells: Dict[Tuple[str, str], List[str]]) -> None:
    width = 8
    log("")
    log("publisher \\ subscriber " + "".join(f"{LABELS[c]:>{width}}" for c in languages))
    for publisher in languages:
        row = "".join(f"{('ok' if not cells[(publisher, s)] else 'FAIL'):>{width}}" for s in languages)
        log(f"{LABELS[publisher]:<22} {row}")
    log("")


def run(languages: Sequence[str], keep: bool) -> int:
    failures: List[str] = []
    cells: Dict[Tuple[str, str], List[str]] = {(p, s): [] for p in languages for s in languages}
    with Session(keep=keep) as session:
        if keep:
            log(f"keeping the session's files in {session.root}")
        keys = {language: keygen(session, language, f"publisher-{language}") for language in languages}

        log(f"publisher -> subscriber, {COUNT} messages of {', '.join(map(str, SIZES))} B, {ciphers()[0]}")
        for publisher in languages:
            key, public = keys[publisher]
            for subscriber in languages:
                problems = cells[(publisher, subscriber)]
                try:
                    problems += run_topic(
                        session, publisher, [subscriber], ciphers()[0], key, public, f"{publisher}-{subscriber}"
                    )
                    other = keygen(session, publisher, f"other-{publisher}-{subscriber}")[1]
                    problems += check_wrong_key(session, publisher, subscriber, key, public, other)
                except HarnessError as e:
                    problems.append(str(e))
                status = "ok" if not problems else "FAIL: " + "; ".join(problems)
                log(f"  {LABELS[publisher]:>6} publisher -> {LABELS[subscriber]:<6} subscriber: {status}")

        log(f"one publisher, a subscriber in each of {len(languages)} languages at once")
        for i, publisher in enumerate(languages):
            key, public = keys[publisher]
            cipher = ciphers()[i % len(ciphers())]
            try:
                problems = run_topic(session, publisher, languages, cipher, key, public, f"all-{publisher}")
            except HarnessError as e:
                problems = [str(e)]
            status = "ok" if not problems else "FAIL: " + "; ".join(problems)
            log(f"  {LABELS[publisher]:>6} publisher, {cipher}: {status}")
            failures += [f"{LABELS[publisher]} publisher to all: {p}" for p in problems]

        log("SIGKILL of the publisher mid-topic, each language as subscriber")
        for i, subscriber in enumerate(languages):
            publisher = languages[(i + 1) % len(languages)]
            try:
                problem = check_publisher_killed(session, publisher, subscriber, *keys[publisher])
            except HarnessError as e:
                problem = str(e)
            log(f"  {LABELS[publisher]:>6} publisher killed, {LABELS[subscriber]} subscriber: {problem or 'ok'}")
            if problem:
                failures.append(f"{LABELS[publisher]} publisher killed, {LABELS[subscriber]} subscriber: {problem}")

        left = session.residue()
        if left:
            failures.append("left behind: " + ", ".join(left))

    print_matrix(languages, cells)
    for (publisher, subscriber), problems in cells.items():
        failures += [f"{LABELS[publisher]} publisher, {LABELS[subscriber]} subscriber: {p}" for p in problems]
    pairs_ok = sum(1 for p in cells.values() if not p)
    log(f"{pairs_ok}/{len(cells)} publisher/subscriber pairs passed")
    if failures:
        log(f"{len(failures)} failure(s):")
        for failure in failures:
            log(f"  - {failure}")
        return 1
    log("pub/sub interop: all passed")
    return 0


def main() -> int:
    return matrix_main(__doc__ or "", run)


if __name__ == "__main__":
    main_guard(main)
