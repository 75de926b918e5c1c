"""What the interop matrix and the demo share: building the five language
agents, running them with time limits in a private runtime directory, and
cleaning up every process, socket and shared-memory object they leave.

Standard library only, so it runs with the machine's python3 before any
virtual environment exists. The agents' command line is in README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set

REPO = Path(__file__).resolve().parents[2]
AGENTS = REPO / "tests" / "interop" / "agents"
LANGUAGES = ("rust", "c", "cpp", "python", "node")
LABELS = {"rust": "Rust", "c": "C", "cpp": "C++", "python": "Python", "node": "Node"}
CIPHERS = ("aegis-128l", "chacha20-poly1305")
BUILD_TIMEOUT = 1200.0


class HarnessError(Exception):
    """A step of the harness failed; the message names the step and why."""


def log(message: str) -> None:
    print(message, flush=True)


def has_aes() -> bool:
    """Whether the core will pick AEGIS-128L here (it needs hardware AES)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return any(line.split(":", 1)[0].strip() in ("flags", "Features") and " aes" in line for line in text.splitlines())


def ciphers() -> Sequence[str]:
    return CIPHERS if has_aes() else CIPHERS[1:]


def build_agents(languages: Sequence[str], log_dir: Path) -> Dict[str, str]:
    """Runs each agent's build.sh; returns {language: reason} for the failures."""
    log_dir.mkdir(parents=True, exist_ok=True)
    failures: Dict[str, str] = {}
    for language in languages:
        script = AGENTS / language / "build.sh"
        log_file = log_dir / f"build-{language}.log"
        start = time.monotonic()
        log(f"building the {LABELS[language]} agent ({script.relative_to(REPO)}) ...")
        with open(log_file, "wb") as out:
            try:
                code = subprocess.run(
                    ["bash", str(script)],
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=BUILD_TIMEOUT,
                ).returncode
                reason = f"build.sh exited {code}" if code else ""
            except subprocess.TimeoutExpired:
                reason = f"build.sh took more than {BUILD_TIMEOUT:.0f} s"
        if reason:
            tail = log_file.read_text(errors="replace").splitlines()[-15:]
            failures[language] = f"{reason} (log: {log_file})"
            log(f"  FAILED: {reason}; last lines of {log_file}:")
            for line in tail:
                log(f"    {line}")
        else:
            log(f"  built in {time.monotonic() - start:.0f} s")
    return failures


@dataclass
class Result:
    """How an agent run ended. `code` is None when it was killed on timeout."""

    code: Optional[int]
    stdout: str
    stderr: str
    timed_out: bool = False

    def line(self, prefix: str) -> Optional[str]:
        for line in self.stdout.splitlines():
            if line.startswith(prefix):
                return line
        return None

    def describe(self) -> str:
        """One line saying how the run ended, for failure reports."""
        detail = (self.stderr.strip().splitlines() or self.stdout.strip().splitlines() or [""])[-1]
        return how_it_ended(None if self.timed_out else self.code, detail)


def how_it_ended(code: Optional[int], detail: str = "") -> str:
    """`exit 3: error ...`, `killed by signal 9`, or `timed out (killed)` (code None)."""
    if code is None:
        how = "timed out (killed)"
    elif code < 0:
        how = f"killed by signal {-code}"
    else:
        how = f"exit {code}"
    return f"{how}: {detail}" if detail else how


def fields(line: str) -> Dict[str, str]:
    """`ok a=1 b=2` -> {"a": "1", "b": "2"}."""
    return dict(word.split("=", 1) for word in line.split()[1:] if "=" in word)


class Agent:
    """A running agent process whose stdout lines are collected as they come."""

    def __init__(self, language: str, args: Sequence[str], env: Dict[str, str], stderr_path: Path) -> None:
        self.language = language
        self.args = list(args)
        self._stderr_path = stderr_path
        # Open for the agent's life: closed by stop().
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(AGENTS / language / "agent"), *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self.lines: List[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_line(self, matches: Callable[[str], bool], timeout: float, after: int = 0) -> Optional[str]:
        """The first line (from index `after`) that matches, waiting up to `timeout`
        seconds; None on timeout or when the agent exits first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    if matches(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (not self._reader.is_alive() and self.process.poll() is not None):
                    return None
                self._changed.wait(min(remaining, 0.2))

    def stderr_tail(self) -> str:
        try:
            lines = self._stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """Closes its stdin (the agents' signal to finish) and waits, then
        collects its last lines; kills it when it does not exit in time (then
        returns None)."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        self._reader.join(5)
        self._stderr.close()


def _shm_objects() -> Set[str]:
    try:
        return {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith("shmsock-")}
    except OSError:
        return set()


@dataclass
class Session:
    """A private runtime directory (0700) and every agent started in it. On exit
    every agent still running is killed, and what they left is reported."""

    keep: bool = False
    root: Path = field(init=False)
    runtime: Path = field(init=False)
    env: Dict[str, str] = field(init=False)
    agents: List[Agent] = field(default_factory=list)
    _shm_before: Set[str] = field(default_factory=set)

    def __enter__(self) -> Session:
        self.root = Path(tempfile.mkdtemp(prefix="shmsock-interop-"))
        self.runtime = self.root / "run"
        self.runtime.mkdir(mode=0o700)
        (self.root / "keys").mkdir(mode=0o700)
        (self.root / "logs").mkdir()
        self.env = dict(os.environ, SHMSOCK_RUNTIME_DIR=str(self.runtime), PYTHONUNBUFFERED="1")
        self._shm_before = _shm_objects()
        return self

    def __exit__(self, *exc: object) -> None:
        for agent in self.agents:
            agent.kill()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def start(self, language: str, args: Sequence[str], tag: str) -> Agent:
        agent = Agent(language, args, self.env, self.path("logs", f"{tag}.stderr"))
        self.agents.append(agent)
        return agent

    def run(self, language: str, args: Sequence[str], tag: str, timeout: float = 60.0) -> Result:
        """Runs an agent to completion (killed after `timeout` seconds)."""
        agent = self.start(language, args, tag)
        timed_out = False
        try:
            agent.process.stdin.close()  # type: ignore[union-attr]
            agent.process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        agent.kill()
        self.agents.remove(agent)
        stderr = self.path("logs", f"{tag}.stderr").read_text(errors="replace")
        return Result(None if timed_out else agent.process.returncode, "\n".join(agent.lines), stderr, timed_out)

    def residue(self) -> List[str]:
        """Files left in the runtime directory and shared-memory objects that
        appeared during the session and are still there."""
        left = [f"runtime dir: {p.name}" for p in sorted(self.runtime.iterdir())]
        left += [f"/dev/shm/{name}" for name in sorted(_shm_objects() - self._shm_before)]
        return left


def main_guard(main: Callable[[], int]) -> None:
    """Runs `main`, turning Ctrl-C and harness errors into one line and an exit code."""
    try:
        sys.exit(main())
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def matrix_main(doc: str, run: Callable[[Sequence[str], bool], int]) -> int:
    """The command line the matrices share (--no-build, --only, --keep): builds
    the agents of the chosen languages, then returns `run(languages, keep)`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-build", action="store_true", help="use the agents as they are built")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(LANGUAGES))
    parser.add_argument("--keep", action="store_true", help="keep the session's keys and logs")
    args = parser.parse_args()
    languages: Sequence[str] = LANGUAGES
    if args.only:
        languages = tuple(s.strip() for s in args.only.split(","))
        unknown = [s for s in languages if s not in LANGUAGES]
        if unknown:
            parser.error(f"unknown language(s) {', '.join(unknown)}; choose from {', '.join(LANGUAGES)}")
    if not args.no_build and build_agents(languages, REPO / "build" / "interop" / "logs"):
        return 1  # build_agents said which agent failed and why
    return run(languages, args.keep)
