"""The programs of examples/python run and print what their READMEs say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def start(args: list, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-u", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r}; stderr: {proc.stderr.read() if proc.stderr else ''}")


def test_producer_consumer(tmp_path: Path, name: str) -> None:
    script = EXAMPLES / "producer_consumer" / "producer_consumer.py"
    common = ["--name", name, "--keys", str(tmp_path), "-n", "3000"]
    consumer = start([str(script), *common], tmp_path)
    try:
        wait_for_line(consumer, "consumer on")
        assert (tmp_path / "consumer.pub").exists()
        assert oct(os.stat(tmp_path / "consumer.key").st_mode & 0o777) == "0o600"
        producer = subprocess.run(
            [sys.executable, str(script), "-p", *common], capture_output=True, text=True, timeout=60
        )
        assert producer.returncode == 0, producer.stderr
        assert "produced 3000 messages" in producer.stdout
        out, err = consumer.communicate(timeout=30)
        assert consumer.returncode == 0, err
        lines = out.splitlines()
        assert [s for s in lines if s.startswith("consumed ") and s.endswith("k messages")] == [
            "consumed 1k messages",
            "consumed 2k messages",
            "consumed 3k messages",
        ]
    finally:
        consumer.kill()
        consumer.communicate()


def test_producer_without_consumer_says_what_to_do(tmp_path: Path, name: str) -> None:
    script = EXAMPLES / "producer_consumer" / "producer_consumer.py"
    r = subprocess.run(
        [sys.executable, str(script), "-p", "--keys", str(tmp_path), "--name", name],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "start the consumer first" in r.stderr


def test_echo(tmp_path: Path, name: str) -> None:
    server = start(
        [str(EXAMPLES / "echo" / "echo_server.py"), "--name", name, "--keys", str(tmp_path), "--once"], tmp_path
    )
    try:
        wait_for_line(server, "echo server on")
        client = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "echo" / "echo_client.py"),
                "--name",
                name,
                "--keys",
                str(tmp_path),
                "hello",
                "world",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert client.returncode == 0, client.stderr
        assert "echo: hello" in client.stdout and "echo: world" in client.stdout
        out, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        assert "left after 2 messages" in out
        wrong = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "echo" / "echo_client.py"),
                "--name",
                name,
                "--server-key",
                "shmsock-pk:" + "A" * 43,
                "x",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert wrong.returncode == 1 and "NOT_FOUND" in wrong.stderr  # the server is gone
    finally:
        server.kill()
        server.communicate()


def test_echo_server_survives_a_client_that_never_reads(tmp_path: Path, name: str) -> None:
    """The server replies with the non-blocking Connection.send: a client that
    sends a lot and never reads fills only its own queue (the echo that does
    not fit is dropped, then the server stops reading it, so its sends time
    out), and the next client is served as before."""
    server = start([str(EXAMPLES / "echo" / "echo_server.py"), "--name", name, "--keys", str(tmp_path)], tmp_path)
    deaf = None
    try:
        wait_for_line(server, "echo server on")
        key = (tmp_path / "echo.pub").read_text().strip()
        # 80 x 64 KiB of echoes: more than its ring (2 MiB) and queue (1 MiB).
        deaf = start(
            [
                "-c",
                "import sys, time, shmsock\n"
                "s = shmsock.connect(sys.argv[1], server_key=sys.argv[2])\n"
                "for _ in range(80):\n"
                "    try:\n"
                "        s.send(bytes(65536), timeout=2)\n"
                "    except shmsock.Timeout:\n"
                "        print('stopped', flush=True)\n"
                "        break\n"
                "print('sent', flush=True)\n"
                "time.sleep(60)\n",
                name,
                key,
            ],
            tmp_path,
        )
        assert wait_for_line(deaf, "stopped").strip() == "stopped"  # not all 80 were taken
        assert "dropped" in wait_for_line(server, "echo to client")
        client = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "echo" / "echo_client.py"),
                "--name",
                name,
                "--server-key",
                key,
                "still here",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert client.returncode == 0, client.stderr
        assert "echo: still here" in client.stdout
        server.terminate()
        out, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        assert out.splitlines()[-1] == "stopped"
    finally:
        for proc in (server, deaf):
            if proc is not None:
                proc.kill()
                proc.communicate()


def test_pubsub_through_run_examples(tmp_path: Path) -> None:
    """examples/run_examples.sh runs the pub/sub scenario with the Python
    script, as it does with the Rust and C programs."""
    root = EXAMPLES.parent.parent
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # run_examples.sh makes its own private runtime directory.
    env.pop("SHMSOCK_RUNTIME_DIR", None)
    r = subprocess.run(
        ["sh", str(root / "examples" / "run_examples.sh"), "pubsub", str(EXAMPLES / "pubsub" / "pubsub.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: example pubsub" in r.stdout


def test_pubsub_usage(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "pubsub" / "pubsub.py"), "-s", "x"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and "usage" in r.stderr
