"""The ``heatmap`` command on a real Spark Connect server (``--spark-master sc://...``):
the same cells as DuckDB's.

The server is pyspark's own ``SparkConnectServer`` (the connect jar that pip's pyspark
ships), started by ``spark-submit`` in a process of its own, as in production, bound to
127.0.0.1 on a free port (``local[2]``, no web UI); this process is only its client (no
JVM of its own for it). One server for the module, stopped at its end with its whole
process group.
"""
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from analysis import cli, spark
from test_spark import DATASET, lake  # noqa: F401  (lake: the generated store fixture)

pytestmark = pytest.mark.spark
START_TIMEOUT = 180   # seconds for the server's JVM to start (about 10 s here)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ip(hex_address: str):
    """An address of /proc/net/tcp (4 bytes) or tcp6 (16), as the kernel prints it:
    32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    return ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))


def _listening(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs that process ``pid`` listens on (TCP, IPv4 and IPv6)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:   # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:   # 0A: LISTEN
                address, port = fields[1].split(":")
                ip = _ip(address)
                ip = getattr(ip, "ipv4_mapped", None) or ip   # ::ffff:127.0.0.1
                found.add((str(ip), int(port, 16)))
    return found


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    """A Spark Connect server in its own process, bound to 127.0.0.1: its ``sc://`` URL.
    Stopped (SIGTERM to its process group, SIGKILL if it lingers) at the module's end."""
    problem = spark.java_problem()
    if problem:
        pytest.fail(f"{problem}; bash scripts/test.sh installs Java (openjdk-17-jre-headless)")
    import pyspark
    home = Path(pyspark.__file__).parent
    [jar] = (home / "jars").glob("spark-connect_*.jar")
    folder = tmp_path_factory.mktemp("connect-server")
    port = _free_port()
    conf = {"spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(port),
            "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.extraJavaOptions": "-XX:-DontCompileHugeMethods",
            "spark.sql.warehouse.dir": str(folder / "warehouse")}
    command = [str(home / "bin" / "spark-submit"), "--master", "local[2]",
               "--class", "org.apache.spark.sql.connect.service.SparkConnectServer"]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "PYSPARK_SUBMIT_ARGS")}
    env.update(SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1")
    log = folder / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command + [str(jar)], stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, cwd=folder,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        started = f"Spark Connect server started at: 127.0.0.1:{port}"
        while started not in log.read_text(errors="replace"):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Spark Connect server did not start:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        # spark-submit execs the JVM: the server is that process, and every port it
        # listens on (gRPC, the driver's RPC, the block manager) is on the loopback
        listening = _listening(server.pid)
        assert ("127.0.0.1", port) in listening, listening
        assert {address for address, _ in listening} == {"127.0.0.1"}, listening
        yield f"sc://127.0.0.1:{port}"
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)
        assert server.poll() is not None


def _cells(capsys, *argv) -> list[dict]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_heatmap_command_over_spark_connect_gives_duckdbs_cells(lake, connect_url,  # noqa: F811
                                                                 capsys):
    """PSI from the snapshots' profiles (Parquet views on the server), KS binning the
    rows of one group (the slice's filtered view): every cell equal to DuckDB's to 1e-9,
    through a client that starts no JVM; the command releases its sessions on the
    server, and the process is not turned into a Connect-only one."""
    for metric, unit, extra in (("psi", "month", ["--segment", "g"]),
                                ("ks", "month", ["--segment", "g", "--group", "a"])):
        args = ["heatmap", "--store", str(lake.root), "--dataset", DATASET, "--unit", unit,
                "--metric", metric, *extra, "--json"]
        duck = _cells(capsys, *args, "--engine", "duckdb")
        remote = _cells(capsys, *args, "--engine", "spark", "--spark-master", connect_url)
        assert len(duck) == len(remote) > 0
        for a, b in zip(duck, remote):
            assert {k: a[k] for k in a if k != "value"} == {k: b[k] for k in b if k != "value"}
            assert (a["value"] is None) == (b["value"] is None)
            if a["value"] is not None:
                assert abs(a["value"] - b["value"]) <= 1e-9
        assert connect_url not in spark._SESSIONS and not spark._THREAD_SESSIONS
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ


def test_an_unreachable_connect_server_is_a_one_line_error(lake, capsys,  # noqa: F811
                                                           monkeypatch):
    """A port where no server listens: exit 2 and one line, in seconds (the Connect
    client alone would retry for ten minutes)."""
    monkeypatch.setattr(spark, "CONNECT_TIMEOUT", 1.0)
    url = f"sc://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    code = cli.main(["heatmap", "--store", str(lake.root), "--dataset", DATASET,
                     "--engine", "spark", "--spark-master", url])
    out, err = capsys.readouterr()
    assert code == 2 and err == f"error: no Spark Connect server answers at {url} (waited 1 s)\n"
    assert time.monotonic() - started < 30
