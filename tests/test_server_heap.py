"""The collector settings a serving process runs with (server/heap.py)."""
import gc
import subprocess
import sys
import textwrap


def test_a_serving_process_freezes_its_start_up_heap_and_collects_the_young_less_often():
    # in a fresh interpreter: freezing is once per process, and must not touch the test process
    code = textwrap.dedent("""
        import gc, json, trio
        from offhook.server import heap
        from offhook.server.app import OffhookApp
        from offhook.server.config import Config
        from offhook.server.echo import EchoHandler
        from offhook.server.run import serve_app

        before = gc.get_threshold()
        async def main():
            app = OffhookApp(Config.load(env={}, twilio_auth_token="t" * 32), lambda call: EchoHandler(call))
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_app, app, "127.0.0.1", 0)
                frozen = gc.get_freeze_count()
                garbage = []
                garbage.append(garbage)  # a cycle made after start-up is still collected
                del garbage
                found = gc.collect()
                print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": frozen,
                                  "collected": found, "again": heap.settle()}))
                nursery.cancel_scope.cancel()
        trio.run(main)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["before"][0] == 700 and r["after"][0] == 10_000 and r["after"][1:] == r["before"][1:]
    assert r["frozen"] > 10_000  # the imported SDKs and the app: out of the collector's walks
    assert r["collected"] >= 1
    assert r["again"] == 0
