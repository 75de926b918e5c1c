#!/usr/bin/env python3
"""The interop matrix: every language's server against every language's client.

For each of the 25 ordered (server, client) pairs of Rust, C, C++, Python and
Node agents, and each cipher (AEGIS-128L over the memfd backend,
ChaCha20-Poly1305 over the named backend), a client sends messages of 0 B, 1 B,
64 B, 64 KiB and 256 KiB (four times its 64 KiB ring) and verifies every echo
byte for byte, the server's key and the cipher; the server reports the same
counts. Per pair, a client pinning the wrong server key and a client off the
server's allow-list must both be refused. Key files saved by each language
must load in every other. Then each language's server and client are killed
with SIGKILL mid-transfer: the other side must report it and the server keep
serving. Prints the 5x5 matrix and, for each failing cell, the pair and the
reason; exits 1 if anything failed or anything was left behind.

    python3 tests/interop/matrix.py [--no-build] [--only rust,python] [--keep]
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

SIZES = (0, 1, 64, 65536, 262144)
RING_SIZE = 65536
BACKEND_OF = {"aegis-128l": "memfd", "chacha20-poly1305": "named"}


class Keys:
    """Key files written by each language's agent, and their public keys."""

    def __init__(self) -> None:
        self.public: Dict[str, str] = {}  # key file path -> shmsock-pk text
        self.fingerprint: Dict[str, str] = {}

    def generate(self, session: Session, language: str, name: str) -> str:
        path = str(session.path("keys", f"{name}.key"))
        result = session.run(language, ["keygen", path], f"keygen-{name}", timeout=30)
        line = result.line("public ")
        if result.code != 0 or line is None:
            raise HarnessError(f"{LABELS[language]} keygen {name}: {result.describe()}")
        mode = os.stat(path).st_mode & 0o777
        if mode != 0o600:
            raise HarnessError(f"{LABELS[language]} keygen wrote {path} with mode {mode:o}, not 600")
        self.public[path] = line.split()[1]
        return path


def check_key_files(session: Session, keys: Keys, languages: Sequence[str], files: Dict[str, str]) -> List[str]:
    """Every language loads the key file each language saved: same public key."""
    failures = []
    for writer in languages:
        path = files[writer]
        for reader in languages:
            result = session.run(reader, ["pubkey", path], f"pubkey-{writer}-by-{reader}", timeout=30)
            line = result.line("public ")
            if result.code != 0 or line is None:
                failures.append(f"key file saved by {LABELS[writer]}, loaded by {LABELS[reader]}: {result.describe()}")
            elif line.split()[1] != keys.public[path]:
                failures.append(
                    f"key file saved by {LABELS[writer]}, loaded by {LABELS[reader]}: "
                    f"public key {line.split()[1]} instead of {keys.public[path]}"
                )
            else:
                keys.fingerprint[path] = line.split()[2] if len(line.split()) > 2 else ""
    return failures


class Servers:
    """One echo server per (language, backend), each allowing the good client keys."""

    def __init__(self, session: Session, keys: Keys, tag: str) -> None:
        self.session = session
        self.keys = keys
        self.tag = tag
        self.running: Dict[Tuple[str, str], Tuple[Agent, str, str]] = {}

    def start(self, language: str, backend: str, key_file: str, allow: Sequence[str]) -> Tuple[Agent, str, str]:
        name = f"interop-{self.tag}-{language}-{backend}"
        args = ["serve", "--name", name, "--key", key_file, "--backend", backend]
        for public in allow:
            args += ["--allow", public]
        agent = self.session.start(language, args, f"serve-{language}-{backend}")
        line = agent.wait_line(lambda s: s.startswith("ready "), timeout=30)
        if line is None:
            reason = agent.stderr_tail() or "no 'ready' line within 30 s"
            agent.kill()
            raise HarnessError(f"the {LABELS[language]} server ({backend}) did not start: {reason}")
        _, _, public, fingerprint = ([*line.split(), "", "", "", ""])[:4]
        if public != self.keys.public[key_file]:
            raise HarnessError(f"the {LABELS[language]} server announced {public}, not the key of {key_file}")
        self.running[(language, backend)] = (agent, name, fingerprint)
        return agent, name, fingerprint

    def stop_all(self) -> List[str]:
        problems = []
        for (language, backend), (agent, _, _) in self.running.items():
            code = agent.stop(timeout=10)
            if code != 0:
                how = "did not exit within 10 s of its stdin closing" if code is None else f"exited {code}"
                problems.append(f"{LABELS[language]} server ({backend}) {how}: {agent.stderr_tail()}")
        return problems


def client_args(name: str, server_public: str, cipher: str, key_file: Optional[str]) -> List[str]:
    args = [
        "client",
        "--name",
        name,
        "--server-key",
        server_public,
        "--cipher",
        cipher,
        "--ring-size",
        str(RING_SIZE),
        "--sizes",
        ",".join(map(str, SIZES)),
    ]
    return args + (["--key", key_file] if key_file else [])


def check_exchange(
    session: Session,
    servers: Servers,
    keys: Keys,
    server: str,
    client: str,
    cipher: str,
    client_key: str,
    server_public: str,
) -> Optional[str]:
    """One client run against one server; None when every check passed."""
    backend = BACKEND_OF[cipher]
    agent, name, server_fp = servers.running[(server, backend)]
    mark = len(agent.lines)
    result = session.run(
        client, client_args(name, server_public, cipher, client_key), f"client-{server}-{client}-{cipher}", timeout=60
    )
    where = f"{cipher} over {backend}"
    line = result.line("ok ")
    if result.code != 0 or line is None:
        return f"{where}: client {result.describe()}"
    got = fields(line)
    expected = {
        "cipher": cipher,
        "server": server_fp,
        "client": keys.fingerprint.get(client_key, got.get("client")),
        "messages": str(len(SIZES)),
        "bytes": str(sum(SIZES)),
    }
    for key, value in expected.items():
        if got.get(key) != value:
            return f"{where}: client reported {key}={got.get(key)}, expected {value}"
    client_fp = got["client"]
    close = agent.wait_line(lambda s: s.startswith(f"close {client_fp} "), timeout=10, after=mark)
    if close is None:
        return f"{where}: the server never reported the client's close"
    if close.split()[2:4] != [str(len(SIZES)), str(sum(SIZES))]:
        return f"{where}: the server counted '{close}', expected {len(SIZES)} messages, {sum(SIZES)} bytes"
    return None


def check_refusals(
    session: Session, servers: Servers, keys: Keys, server: str, client: str, client_key: str, server_public: str
) -> Optional[str]:
    """A client pinning the wrong key, and a client off the allow-list, are refused."""
    cipher = ciphers()[0]
    _, name, _ = servers.running[(server, BACKEND_OF[cipher])]
    wrong_public = keys.public[client_key]  # a valid key, but not the server's
    cases = [
        ("pinning the wrong server key", wrong_public, client_key, "SERVER_KEY_MISMATCH"),
        ("off the allow-list", server_public, None, "HANDSHAKE_REJECTED"),
    ]
    for what, pinned, key_file, code in cases:
        result = session.run(
            client, client_args(name, pinned, cipher, key_file), f"refused-{server}-{client}-{code}", timeout=30
        )
        if result.code != 3 or f"error {code}" not in result.stderr:
            return f"a client {what} should exit 3 with 'error {code}', but: {result.describe()}"
    return None


def check_kills(
    session: Session, keys: Keys, languages: Sequence[str], server_keys: Dict[str, str], client_keys: Dict[str, str]
) -> List[str]:
    """SIGKILL mid-transfer, each language on each side once. The client of a
    killed server ends with PEER_GONE, and a new server reclaims the name; the
    server of a killed client reports the close and serves the next client."""
    failures = []
    for i, victim in enumerate(languages):
        other = languages[(i + 1) % len(languages)]
        for killed_side in ("server", "client"):
            server, client = (victim, other) if killed_side == "server" else (other, victim)
            label = f"{LABELS[server]} server, {LABELS[client]} client, {killed_side} killed"
            problem = kill_one(session, keys, server, client, killed_side, server_keys[server], client_keys[client])
            if problem:
                failures.append(f"{label}: {problem}")
    return failures


def kill_one(
    session: Session, keys: Keys, server: str, client: str, killed_side: str, server_key: str, client_key: str
) -> Optional[str]:
    servers = Servers(session, keys, f"{os.getpid()}-kill-{killed_side}")
    try:
        problem = kill_mid_transfer(session, servers, keys, server, client, killed_side, server_key, client_key)
    except HarnessError as e:
        problem = str(e)
    problems = ([problem] if problem else []) + servers.stop_all()
    return "; ".join(problems) or None


def kill_mid_transfer(
    session: Session,
    servers: Servers,
    keys: Keys,
    server: str,
    client: str,
    killed_side: str,
    server_key: str,
    client_key: str,
) -> Optional[str]:
    server_public = keys.public[server_key]
    cipher = ciphers()[0]
    agent, name, _ = servers.start(server, "memfd", server_key, [])
    args = [*client_args(name, server_public, cipher, client_key), "--seconds", "30"]
    runner = session.start(client, args, f"kill-{server}-{client}-{killed_side}")
    if runner.wait_line(lambda s: s.startswith("progress "), timeout=20) is None:
        return f"the client made no progress: {runner.stderr_tail()}"
    if killed_side == "server":
        os.killpg(agent.process.pid, signal.SIGKILL)
        agent.kill()
        try:
            code: Optional[int] = runner.process.wait(15)
        except subprocess.TimeoutExpired:
            code = None
        runner.kill()
        if code != 3 or "error PEER_GONE" not in runner.stderr_tail():
            return f"the client should exit 3 with 'error PEER_GONE', but exited {code}: {runner.stderr_tail()}"
        # The dead server's socket is reclaimed by the next bind of its name.
        servers.start(server, "memfd", server_key, [])
    else:
        os.killpg(runner.process.pid, signal.SIGKILL)
        runner.kill()
        fingerprint = keys.fingerprint[client_key]
        if agent.wait_line(lambda s: s.startswith(f"close {fingerprint} "), timeout=15) is None:
            return "the server did not report the killed client's close"
    result = session.run(
        client,
        client_args(name, server_public, cipher, client_key),
        f"after-kill-{server}-{client}-{killed_side}",
        timeout=60,
    )
    if result.code != 0:
        return f"the next client was not served: {result.describe()}"
    return None


def print_matrix(languages: Sequence[str], cells: Dict[Tuple[str, str], List[str]]) -> None:
    width = 8
    log("")
    log("server \\ client " + "".join(f"{LABELS[c]:>{width}}" for c in languages))
    for server in languages:
        row = "".join(f"{('ok' if not cells[(server, c)] else 'FAIL'):>{width}}" for c in languages)
        log(f"{LABELS[server]:<15} {row}")
    log("")


def run(languages: Sequence[str], keep: bool) -> int:
    failures: List[str] = []
    cells: Dict[Tuple[str, str], List[str]] = {(s, c): [] for s in languages for c in languages}
    with Session(keep=keep) as session:
        if keep:
            log(f"keeping the session's files in {session.root}")
        keys = Keys()
        log("key files: each language saves one, every language loads each")
        client_keys = {lang: keys.generate(session, lang, f"client-{lang}") for lang in languages}
        server_keys = {lang: keys.generate(session, lang, f"server-{lang}") for lang in languages}
        failures += check_key_files(session, keys, languages, client_keys)
        failures += check_key_files(session, keys, languages, server_keys)
        log(f"  {len(languages) ** 2 * 2} loads, {'all equal' if not failures else 'FAILURES'}")

        allow = [keys.public[client_keys[lang]] for lang in languages]
        servers = Servers(session, keys, str(os.getpid()))
        for server in languages:
            for cipher in ciphers():
                servers.start(server, BACKEND_OF[cipher], server_keys[server], allow)
        for server in languages:
            server_public = keys.public[server_keys[server]]
            for client in languages:
                problems = cells[(server, client)]
                for cipher in ciphers():
                    problem = check_exchange(
                        session, servers, keys, server, client, cipher, client_keys[client], server_public
                    )
                    if problem:
                        problems.append(problem)
                problem = check_refusals(session, servers, keys, server, client, client_keys[client], server_public)
                if problem:
                    problems.append(problem)
                status = "ok" if not problems else "FAIL: " + "; ".join(problems)
                log(f"  {LABELS[server]:>6} server <- {LABELS[client]:<6} client: {status}")
        failures += servers.stop_all()

        log("SIGKILL mid-transfer, each language on each side")
        kill_failures = check_kills(session, keys, languages, server_keys, client_keys)
        log(f"  {len(languages) * 2} kills, {'all handled' if not kill_failures else 'FAILURES'}")
        failures += kill_failures

        left = session.residue()
        if left:
            failures.append("left behind: " + ", ".join(left))

    print_matrix(languages, cells)
    for (server, client), problems in cells.items():
        for problem in problems:
            failures.append(f"{LABELS[server]} server, {LABELS[client]} client: {problem}")
    pairs_ok = sum(1 for p in cells.values() if not p)
    log(
        f"{pairs_ok}/{len(cells)} pairs passed ({', '.join(ciphers())}; sizes {', '.join(map(str, SIZES))} B; "
        f"wrong key and allow-list refusals)"
    )
    if failures:
        log(f"{len(failures)} failure(s):")
        for failure in failures:
            log(f"  - {failure}")
        return 1
    log("interop matrix: all passed")
    return 0


def main() -> int:
    return matrix_main(__doc__ or "", run)


if __name__ == "__main__":
    main_guard(main)
