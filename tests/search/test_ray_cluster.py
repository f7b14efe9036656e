"""A search against a 2-node Ray cluster started on loopback (``--address``).

Each node is a ``ray start --block`` process of this test, stopped in a ``finally`` by
signalling exactly those processes (and their process groups). ``ray stop --force`` is not
used: it kills every Ray process of the user on the machine, other people's runs included.

The nodes advertise 127.0.0.2: Ray rewrites ``127.0.0.1`` and ``localhost`` to the machine's
network address, which nodes told to use 127.0.0.1 then do not answer on. Ray listens on
every interface anyway, so the cluster keeps token authentication, with a fresh random token.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import pytest

from search.store import RunStore

HOST = "127.0.0.2"
RAY = str(Path(sys.executable).with_name("ray")) if Path(sys.executable).with_name("ray").exists() else shutil.which("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args],
                            env=env, start_new_session=True, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(nodes: list[subprocess.Popen]) -> None:
    for node in reversed(nodes):
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)  # ray start --block then stops what it started
    for node in reversed(nodes):
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(node.pid, signal.SIGKILL)  # anything left in the node's own process group
        except ProcessLookupError:
            pass


@pytest.fixture
def cluster(tmp_path):
    """A head and a worker node, one CPU each, on loopback; yields ``(address, env)``, the env
    holding the cluster's token (a driver must have it before it imports ray)."""
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's unix sockets live under it
    port = free_port()
    address = f"{HOST}:{port}"
    nodes = [start_node(["--head", "--port", str(port), "--node-ip-address", HOST, "--include-dashboard",
                         "false", "--temp-dir", temp_dir], env, tmp_path / "head.log")]
    try:
        time.sleep(3)
        nodes.append(start_node(["--address", address, "--node-ip-address", HOST,
                                 "--dashboard-agent-listen-port", str(free_port()),
                                 "--dashboard-agent-grpc-port", str(free_port()),
                                 "--metrics-export-port", str(free_port()),
                                 "--runtime-env-agent-port", str(free_port())], env, tmp_path / "worker.log"))
        yield address, env
        for node in nodes:
            assert node.poll() is None, "a node died during the test"
    finally:
        stop(nodes)
        shutil.rmtree(temp_dir, ignore_errors=True)


DRIVER = """
import time, ray
from search.run import run
ray.init(address={address!r}, logging_level="error", log_to_driver=False)
deadline = time.monotonic() + 60
while sum(node["Alive"] for node in ray.nodes()) < 2:
    assert time.monotonic() < deadline, "the worker node never joined"
    time.sleep(0.5)
ray.shutdown()  # the search connects by itself, with --address
config = fakes.fake_config({run_dir!r}, max_evals=40, address={address!r}, workers=None)
summary = run(config, evaluate=fakes.fake_evaluate, tasks=[fakes.FakeTask(delay_s=0.05)])
assert not ray.is_initialized()  # the search disconnected; the cluster is the test's to stop
print("evaluations", summary.evaluations, summary.stopped_by)
"""


@pytest.mark.timeout(240)
def test_search_on_a_two_node_cluster(tmp_path, fakes, cluster):
    address, env = cluster
    run_dir = tmp_path / "run"
    script = tmp_path / "driver.py"
    script.write_text(fakes.script_header + DRIVER.format(address=address, run_dir=str(run_dir)))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "evaluations 40 budget" in proc.stdout
    with RunStore(run_dir) as store:
        nodes = {r.per_task["fake"]["node"] for r in store.evaluations() if r.error is None}
    assert len(nodes) == 2  # both nodes evaluated candidates


def test_an_unreachable_address_is_a_clear_error_at_once(tmp_path):
    from search.runner import check_reachable

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")  # something answers: Ray takes it from here
        check_reachable(f"ray://127.0.0.1:{port}")
    check_reachable("auto")
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=rf"no Ray cluster answers at 127.0.0.1:{port} .*ray start --head"):
        check_reachable(f"127.0.0.1:{port}")  # closed now
    assert time.monotonic() - start < 5

    from typer.testing import CliRunner
    from symbolic_opt.cli import app

    result = CliRunner().invoke(app, ["search", "--address", f"127.0.0.1:{port}", "--max-evals", "3",
                                      "--out", str(tmp_path / "run"), "--no-live"])
    assert result.exit_code == 1 and "no Ray cluster answers" in result.output and "Traceback" not in result.output
