"""Alert records of a running stream: the ``stream`` command keeps every alert in the
folder's alerts.json and announces new ones; a restart does not announce them again."""
import subprocess
import sys

from analysis.streaming.alerts import alert_key, read_alerts


def _stream(store, *extra):
    return subprocess.run(
        [sys.executable, "-m", "analysis", "stream", "--scenario", "ecommerce",
         "--clock", "simulated", "--start", "2026-11-02T18:00", "--store", str(store),
         "--name", "shop", "--progress", "60", *extra],
        capture_output=True, text=True, timeout=300)


def test_stream_command_records_and_announces_alerts(tmp_path):
    out = _stream(tmp_path, "--duration", "2700", "--fault", "null:user_affinity:0.3",
                  "--at", "32m")
    assert out.returncode == 0, out.stderr
    alerts = read_alerts(tmp_path / "streams" / "shop")
    ctr = [a for a in alerts if a["signal"] == "ctr"]
    assert len(ctr) == 1
    assert ctr[0]["start"] == "2026-11-02T18:32:00"
    assert ctr[0]["ranked_causes"][0] == "user_affinity"
    assert ctr[0]["direction"] == "down"
    announced = [line for line in out.stdout.splitlines() if line.startswith("ALERT ctr")]
    assert announced == [f"ALERT ctr down {ctr[0]['magnitude'] * 100:+.1f} % since "
                         f"2026-11-02T18:32:00 (detected {ctr[0]['detected_at']}); "
                         "causes: user_affinity"]
    # resumed for ten more minutes: the same alerts, none announced again
    again = _stream(tmp_path, "--duration", "3300")
    assert again.returncode == 0, again.stderr
    assert "ALERT ctr" not in again.stdout
    keys = {alert_key(a) for a in read_alerts(tmp_path / "streams" / "shop")}
    assert {alert_key(a) for a in ctr} <= keys
