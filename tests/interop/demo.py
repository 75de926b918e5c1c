#!/usr/bin/env python3
"""The shmsock demo (`make demo`): a server in one language and a client in each
of the others, all talking through one wire format at the same time.

Each program is that language's interop agent (tests/interop/agents), built on
its own package. Every side saves its key file with its own package; the
server allows exactly the four client keys, and each client pins the server's
key. The clients send messages of 64 B, 1 KiB and 64 KiB for a few seconds and
verify every echo byte for byte; the demo prints, each second, the rate of
every client, then a summary that the server's counts confirm. Finishes by
itself in about half a minute once everything is built.

    python3 tests/interop/demo.py [--server python] [--seconds 8] [--no-build]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    LABELS,
    LANGUAGES,
    REPO,
    Agent,
    HarnessError,
    Session,
    build_agents,
    fields,
    how_it_ended,
    log,
    main_guard,
)

SIZES = "64,1024,65536"


def keygen(session: Session, language: str, name: str) -> str:
    path = str(session.path("keys", f"{name}.key"))
    result = session.run(language, ["keygen", path], f"keygen-{name}", timeout=30)
    line = result.line("public ")
    if result.code != 0 or line is None:
        raise HarnessError(f"the {LABELS[language]} agent could not write a key file: {result.describe()}")
    return line.split()[1]


def rate(count: float, seconds: float) -> str:
    value = count / seconds if seconds > 0 else 0.0
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


class Progress:
    """The latest counts of each client, printed once a second on one line."""

    def __init__(self, clients: Dict[str, Agent]) -> None:
        self.clients = clients
        self.latest: Dict[str, List[float]] = {}
        self.previous: Dict[str, List[float]] = {}
        self.seen: Dict[str, int] = {language: 0 for language in clients}  # lines taken in
        self.done: Dict[str, Dict[str, str]] = {}
        self.failed: Dict[str, str] = {}

    def absorb_new(self) -> None:
        """Takes in the lines the clients printed since the last call."""
        for language, client in self.clients.items():
            new = client.lines[self.seen[language] :]
            self.seen[language] += len(new)
            for line in new:
                self.absorb(language, line)

    def absorb(self, language: str, line: str) -> None:
        words = line.split()
        if words[:1] == ["progress"] and len(words) == 4:
            counts = [float(w) for w in words[1:]]
            self.previous[language] = self.latest.get(language, [0.0, 0.0, 0.0])
            self.latest[language] = counts
        elif words[:1] == ["ok"]:
            self.done[language] = fields(line)

    def current_rate(self, language: str) -> str:
        """Messages per second over the client's last progress interval."""
        (messages, _, elapsed), (before, _, then) = self.latest[language], self.previous[language]
        return f"{rate(messages - before, elapsed - then)} msg/s"

    def line(self, elapsed: float) -> str:
        parts = []
        for language in self.clients:
            state = self.current_rate(language) if language in self.latest else "connecting"
            if language in self.done:
                state = "done"
            elif language in self.failed:
                state = "FAILED"
            parts.append(f"{LABELS[language]} {state}")
        return f"  {elapsed:4.0f} s | " + " | ".join(parts)


def run(server_language: str, seconds: int) -> int:
    client_languages = [lang for lang in LANGUAGES if lang != server_language]
    with Session() as session:
        server_public = keygen(session, server_language, "server")
        client_publics = {lang: keygen(session, lang, f"client-{lang}") for lang in client_languages}
        name = f"demo-{os.getpid()}"
        args = ["serve", "--name", name, "--key", str(session.path("keys", "server.key"))]
        for public in client_publics.values():
            args += ["--allow", public]
        server = session.start(server_language, args, "server")
        ready = server.wait_line(lambda s: s.startswith("ready "), timeout=30)
        if ready is None:
            raise HarnessError(f"the {LABELS[server_language]} server did not start: {server.stderr_tail()}")
        server_fp = ready.split()[3]
        log(
            f"\n{LABELS[server_language]} server on '{name}', key {server_fp}, "
            f"accepting only the keys of the {len(client_languages)} clients"
        )

        clients: Dict[str, Agent] = {}
        for language in client_languages:
            clients[language] = session.start(
                language,
                [
                    "client",
                    "--name",
                    name,
                    "--server-key",
                    server_public,
                    "--key",
                    str(session.path("keys", f"client-{language}.key")),
                    "--sizes",
                    SIZES,
                    "--seconds",
                    str(seconds),
                ],
                f"client-{language}",
            )
        progress = Progress(clients)
        reported = 0
        start = time.monotonic()
        next_report = start + 1.0
        deadline = start + seconds + 30
        while any(c.process.poll() is None for c in clients.values()):
            progress.absorb_new()
            for line in server.lines[reported:]:
                words = line.split()
                if words[0] == "connect":
                    log(f"  server: client with key {words[1]} connected ({words[2]})")
                reported += 1
            now = time.monotonic()
            if now >= next_report:
                log(progress.line(now - start))
                next_report += 1.0
            if now > deadline:
                log("  the clients did not finish in time; stopping them")
                break
            time.sleep(0.05)

        for language, client in clients.items():
            code = client.stop(timeout=5)
            progress.absorb_new()
            if code != 0 or language not in progress.done:
                progress.failed[language] = how_it_ended(code, client.stderr_tail())
        closes: Dict[str, str] = {}
        for language, done in progress.done.items():
            prefix = f"close {done['client']} "
            # wait_line calls it before the loop moves on.
            closed = server.wait_line(lambda s: s.startswith(prefix), timeout=10)  # noqa: B023
            closes[language] = closed.split()[2] if closed else "?"
        server_code = server.stop(timeout=10)

        log(
            f"\n{'client':<8} {'key':<19} {'cipher':<18} {'round trips':>12} {'msg/s':>8} {'MB/s each way':>14} "
            f"{'µs/round trip':>14}  server counted"
        )
        for language in client_languages:
            summary = progress.done.get(language)
            if summary is None:
                log(f"{LABELS[language]:<8} FAILED: {progress.failed.get(language, 'no result')}")
                continue
            messages, total, secs = int(summary["messages"]), int(summary["bytes"]), float(summary["seconds"])
            log(
                f"{LABELS[language]:<8} {summary['client']:<19} {summary['cipher']:<18} {messages:>12,} "
                f"{rate(messages, secs):>8} {total / secs / 1e6:>14.1f} {secs * 1e6 / max(messages, 1):>14.1f}  "
                f"{closes[language]} received"
            )
        problems = [f"{LABELS[lang]} client: {why}" for lang, why in progress.failed.items()]
        problems += [
            f"the server counted {closes[lang]} messages from the {LABELS[lang]} client, which sent "
            f"{progress.done[lang]['messages']}"
            for lang in progress.done
            if closes[lang] != progress.done[lang]["messages"]
        ]
        if server_code != 0:
            problems.append(f"the {LABELS[server_language]} server: {how_it_ended(server_code, server.stderr_tail())}")
        problems += [f"left behind: {item}" for item in session.residue()]
    if problems:
        log("\nthe demo FAILED:")
        for problem in problems:
            log(f"  - {problem}")
        return 1
    log("\nevery echo verified byte for byte; the demo finished cleanly")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--server",
        default="python",
        choices=LANGUAGES,
        help="the server's language (default: %(default)s; the others are clients)",
    )
    parser.add_argument("--seconds", type=int, default=8, help="how long the clients send (default: %(default)s)")
    parser.add_argument("--no-build", action="store_true", help="use the agents as they are built")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    if not args.no_build:
        log("building the five agents (the first time takes a few minutes) ...")
        if build_agents(LANGUAGES, REPO / "build" / "interop" / "logs"):
            return 1  # build_agents said which agent failed and why
    return run(args.server, args.seconds)


if __name__ == "__main__":
    main_guard(main)
