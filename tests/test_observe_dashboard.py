"""The dashboard in a real headless Chromium, over the real server, from a seeded store."""
import time
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from chromium import SKIP_REASON, chromium_binary, headless_chromium
from edge_helpers import running_server
from observe_helpers import sample_record, seeded_calls
from offhook.observe.observer import Observer
from offhook.observe.recording import CallRecorder
from offhook.server.config import Config

TOKEN = "dash-token-0123"
pytestmark = pytest.mark.skipif(chromium_binary() is None, reason=SKIP_REASON)


@asynccontextmanager
async def seeded_server(tmp_path):
    cfg = dict(data_dir=str(tmp_path), validate_signatures=False, metrics_token=TOKEN)
    now = time.time()
    async with Observer.open(Config.load(env={}, **cfg)) as obs:
        for rec in seeded_calls(now):
            if rec.recording_path:  # a real 2 s recording: caller tone left, agent tone right
                r = CallRecorder(tmp_path / "recordings" / "spool", rec.call_sid)
                for k in range(100):
                    r.caller(b"\x10" * 160, 0.02 * (k + 1))
                    r.agent(b"\x90" * 160, 0.02 * k)
                r.save(tmp_path / "recordings" / rec.recording_path)
            await (obs.store.finish_call(rec) if rec.complete else obs.store.start_call(rec))
        async with running_server(**cfg) as app:
            obs.attach(app)
            app.obs = obs
            yield app


CHART_DATA = """(() => {
  const charts = {};
  for (const svg of document.querySelectorAll('svg.chart')) {
    const marks = [...svg.querySelectorAll('rect.bar:not(.total), circle.pt, rect.span')];
    const box = svg.getBoundingClientRect();
    charts[svg.dataset.chart] = {empty: svg.classList.contains('empty'), w: box.width, h: box.height,
      marks: marks.map(m => ({label: m.dataset.label, value: m.dataset.value, p50: m.dataset.p50,
                              drawn: m.getBoundingClientRect().height > 0 || m.getBoundingClientRect().width > 0}))};
  }
  return charts;
})()"""


def test_dashboard_and_call_page_render_in_chromium(tmp_path):
    async def main():
        async with seeded_server(tmp_path) as app, headless_chromium() as browser:
            page = await browser.open(f"{app.base_http}/dashboard?token={TOKEN}")
            assert await page.evaluate("document.title") == "offhook dashboard"
            charts = await page.evaluate(CHART_DATA)
            assert set(charts) == {"latency_over_time", "latency_histogram", "hangups_by_duration", "cost_per_day"}
            for name, c in charts.items():
                assert not c["empty"] and c["w"] > 300 and c["h"] > 100, name
                assert c["marks"] and all(m["drawn"] for m in c["marks"]), name
            hang = {m["label"]: float(m["value"]) for m in charts["hangups_by_duration"]["marks"]}
            assert hang == {"0-10s": 1, "10-30s": 1, "30-60s": 0, "1-3m": 0, "3m+": 1}
            cost = sorted(float(m["value"]) for m in charts["cost_per_day"]["marks"])
            assert cost == pytest.approx([0.01, 0.05, 0.08, 0.2, 0.5])
            hist = {m["label"]: float(m["value"]) for m in charts["latency_histogram"]["marks"]}
            assert sum(hist.values()) == 5 and hist["1400"] == 1 and hist["600"] == 1
            assert len(charts["latency_over_time"]["marks"]) == 4  # four calls with turns, in 4 time bins
            rows = await page.evaluate("[...document.querySelectorAll('table.calls tr[data-sid]')].map(r => "
                                       "[r.dataset.sid, r.querySelector('a').getAttribute('href')])")
            assert [sid for sid, _ in rows] == ["CAseed6", "CAseed5", "CAseed4", "CAseed3", "CAseed2", "CAseed1"]
            assert all(href == f"/dashboard/call/{sid}?token={TOKEN}" for sid, href in rows)
            windows = await page.evaluate("[...document.querySelectorAll('a[href^=\"/dashboard?\"]')].map(a => "
                                          "a.getAttribute('href'))")
            assert f"/dashboard?days=30&token={TOKEN}" in windows
            assert "+1••••••4567" in await page.evaluate("document.body.innerText")
            assert "5551234567" not in await page.evaluate("document.body.innerText")
            assert page.errors == []

            call = await browser.open(f"{app.base_http}{dict(rows)['CAseed3']}")
            src = await call.evaluate("document.querySelector('audio').src")
            assert src == f"{app.base_http}/recordings/CAseed3.wav?token={TOKEN}"
            duration = await call.evaluate("""new Promise(done => {
                const a = document.querySelector('audio');
                if (a.readyState >= 1) return done(a.duration);
                a.addEventListener('loadedmetadata', () => done(a.duration));
                a.addEventListener('error', () => done(-1));
                a.load(); })""")
            assert duration == pytest.approx(2.0, abs=0.03)  # Chromium decoded the WAV's header
            waterfall = await call.evaluate(CHART_DATA)
            assert set(waterfall) == {"waterfall_0"}
            spans = {m["label"] for m in waterfall["waterfall_0"]["marks"]}
            assert spans == {"endpoint wait", "STT final", "LLM first token", "TTS first audio", "first frame sent",
                             "played (mark)"}
            assert call.errors == []
            async with httpx.AsyncClient() as http:
                wav = await http.get(src)
                part = await http.get(src, headers={"Range": "bytes=0-3"})
            assert wav.status_code == 200 and wav.content[:4] == b"RIFF" and wav.content[8:12] == b"WAVE"
            assert wav.headers["content-type"] == "audio/wav"
            assert len(wav.content) == 44 + 16000 * 4  # 2 s, stereo 16-bit
            assert part.status_code == 206 and part.content == b"RIFF"
    trio.run(main)


def test_call_page_without_recording_window_and_escaping(tmp_path):
    async def main():
        async with seeded_server(tmp_path) as app:
            evil = sample_record("CAevil", started_at=time.time() - 60, duration=30.0)
            evil.turns[0].caller_text = '<script>alert("x")</script><img src=x onerror=alert(1)>'
            evil.from_number = '"><i>pwn'
            await app.obs.store.finish_call(evil)
            async with httpx.AsyncClient(base_url=app.base_http, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                page = await http.get("/dashboard/call/CAseed6")  # the incomplete call
                assert page.status_code == 200 and "No recording kept" in page.text and "incomplete" in page.text
                assert "token=" not in page.text  # a header-authenticated page does not leak the token into links
                assert (await http.get("/recordings/CAseed1.wav")).status_code == 404
                assert (await http.get("/dashboard/call/CAnope")).status_code == 404
                week, month = (await http.get("/dashboard")).text, (await http.get("/dashboard?days=30")).text
                assert "CAold" not in week and 'data-sid="CAold"' in month
                page = await http.get("/dashboard/call/CAevil")
                assert "<script>" not in page.text
                assert "<img" not in page.text
                assert "<i>pwn" not in page.text and "&quot;&gt;&lt;i&gt;pwn" in page.text
                assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
                assert page.headers["content-security-policy"].startswith("default-src 'none'")
    trio.run(main)
