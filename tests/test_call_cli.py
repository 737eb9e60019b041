"""`offhook call` against a real `offhook serve --mode echo` process on loopback (real clock: the
server is another process). The call's output is checked as a user would: exit code, the printed log
and timings, and the WAV/JSON files."""
import json
import os
import signal
import subprocess
import sys
import wave

import numpy as np
import pytest

from offhook.cli import main
from offhook.sim.cli import http_base, media_url

TOKEN = "call-cli-test-token-0123456789"
SCENARIO = """
call: {from: "+15551230000"}
steps:
  - wait_for_agent: {quiet: 0.3, timeout: 10}
  - say: "hello is anybody there"
  - wait_for_agent: {quiet: 0.4, timeout: 10}
  - dtmf: "1"
  - hangup: true
"""


@pytest.fixture
def echo_server(tmp_path):
    env = {**os.environ, "OFFHOOK_DATA_DIR": str(tmp_path / "data"), "TWILIO_AUTH_TOKEN": TOKEN}
    env.pop("OFFHOOK_VALIDATE_SIGNATURES", None)
    proc = subprocess.Popen([sys.executable, "-m", "offhook.cli", "serve", "--mode", "echo", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        for line in proc.stdout:  # the server says where it listens once it does
            if "listening on " in line:
                yield line.split("listening on ")[1].split()[0]
                break
        else:
            pytest.fail("server exited before listening")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_signed_call_writes_recording_timeline_and_timings(echo_server, tmp_path, capsys):
    sc = tmp_path / "hello.yaml"
    sc.write_text(SCENARIO)
    out = tmp_path / "out"
    rc = main(["call", str(sc), "--url", echo_server, "--auth-token", TOKEN, "--out", str(out),
               "--voice", "synthetic"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    # live log, then the timings
    for event in ("start", "say", "agent_audio", "dtmf", "hangup"):
        assert f" {event} " in printed
    assert "end of caller line -> first agent audio" in printed
    assert "after the stream Twilio was told: Hangup" in printed  # the webhook flow ran to its end
    (js,) = out.glob("*.json")
    data = json.loads(js.read_text())
    assert data["ended_by"] == "caller" and not data["error"]
    assert 0.28 <= data["lines"][0]["latency"] <= 0.5  # the echo waits for 300 ms of silence
    with wave.open(str(js.with_suffix(".wav"))) as w:
        assert w.getnchannels() == 2
        st = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(float)
    line = data["lines"][0]
    caller = st[int(line["start"] * 8000):int(line["end"] * 8000), 0]
    echo = st[int((line["end"] + 0.4) * 8000):int((2 * line["end"] - line["start"]) * 8000), 1]
    assert np.sqrt(np.mean(caller ** 2)) > 1000 and np.sqrt(np.mean(echo ** 2)) > 1000


def test_wrong_token_is_refused_and_exit_1(echo_server, tmp_path, capsys):
    sc = tmp_path / "hello.yaml"
    sc.write_text(SCENARIO)
    rc = main(["call", str(sc), "--url", echo_server, "--auth-token", "not-the-token", "--out",
               str(tmp_path / "out"), "--voice", "synthetic", "--quiet"])
    assert rc == 1
    assert "/twilio/voice answered 403" in capsys.readouterr().err
    # straight to the media socket: the handshake is refused
    rc = main(["call", str(sc), "--url", echo_server, "--auth-token", "not-the-token", "--out",
               str(tmp_path / "out"), "--voice", "synthetic", "--quiet", "--direct"])
    assert rc == 1
    assert "connect failed" in capsys.readouterr().out


def test_bad_scenario_and_url_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - sing: la\n")
    assert main(["call", str(bad)]) == 2
    assert "unknown step 'sing'" in capsys.readouterr().err
    assert main(["call", str(tmp_path / "missing.yaml")]) == 2
    assert "scenario not found" in capsys.readouterr().err
    good = tmp_path / "ok.yaml"
    good.write_text(SCENARIO)
    assert main(["call", str(good), "--url", "ftp://x"]) == 2
    assert "not a server URL" in capsys.readouterr().err


def test_direct_mode_skips_the_webhook(echo_server, tmp_path, capsys):
    sc = tmp_path / "hello.yaml"
    sc.write_text(SCENARIO)
    rc = main(["call", str(sc), "--url", echo_server, "--auth-token", TOKEN, "--out", str(tmp_path / "o"),
               "--voice", "synthetic", "--quiet", "--direct"])
    out = capsys.readouterr().out
    assert rc == 0 and "after the stream" not in out and "first agent audio" in out


def test_media_url_forms():
    assert media_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/twilio/media"
    assert media_url("https://voice.example.com/") == "wss://voice.example.com/twilio/media"
    assert media_url("ws://h:1/twilio/media") == "ws://h:1/twilio/media"
    assert http_base("ws://h:1/twilio/media") == "http://h:1" and http_base("https://x/") == "https://x"
