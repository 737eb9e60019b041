"""`offhook bench-audio`: the audio core against its baselines, side by side, in one run."""
from __future__ import annotations

import argparse
import json
import sys
import timeit


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--number", type=int, default=2000, help="calls per timing sample")
    p.add_argument("--repeat", type=int, default=7, help="timing samples per side (best is kept)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("-k", metavar="TEXT", default="", help="only cases whose name contains TEXT")


def best_us(fn, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def measure(number: int = 2000, repeat: int = 7, only: str = "") -> list[dict]:
    from offhook.audio.benchcases import CASES

    rows = []
    for case in CASES:
        if only and only not in case.name:
            continue
        try:
            ours, theirs = case.build()
        except ImportError as e:
            rows.append({"case": case.name, "baseline": case.baseline, "skipped": f"missing {e.name}"})
            continue
        # interleave the two sides so that machine noise hits both alike
        a = b = float("inf")
        for _ in range(repeat):
            a = min(a, best_us(ours, number, 1))
            b = min(b, best_us(theirs, number, 1))
        rows.append({"case": case.name, "baseline": case.baseline, "offhook_us": a, "baseline_us": b,
                     "ratio": a / b, "target": case.target, "met": a / b <= case.target,
                     "per_second_us": a * 50})
    return rows


def render(rows: list[dict]) -> str:
    out = [f"{'case':34} {'offhook':>9} {'baseline':>9} {'ratio':>6} {'target':>7} {'per s':>8}  baseline",
           "-" * 105]
    for r in rows:
        if "skipped" in r:
            out.append(f"{r['case']:34} {'skipped: ' + r['skipped']}")
            continue
        speed = f"{1 / r['ratio']:.1f}x faster" if r["ratio"] < 1 else f"{r['ratio']:.2f}x slower"
        out.append(f"{r['case']:34} {r['offhook_us']:8.3f}µ {r['baseline_us']:8.3f}µ {r['ratio']:6.2f} "
                   f"{'<=' + format(r['target'], '.1f'):>7}{' ' if r['met'] else '!'}{r['per_second_us']:7.1f}µ"
                   f"  {r['baseline']} ({speed})")
    out.append("times are per call on 20 ms of audio; 'per s' is offhook's time for one second of audio (50 calls);"
               " ratio = offhook / baseline; ! marks a missed target")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    import platform

    from offhook.audio import _core

    kernels = ["portable C", "AVX2", "AVX-512BW"][_core._simd_level()]
    rows = measure(args.number, args.repeat, args.k)
    print(f"offhook audio core vs baselines on {platform.machine()} / Python {platform.python_version()}"
          f" (kernels: {kernels}; OFFHOOK_SIMD=scalar|avx2 caps them)")
    print(render(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "kernels": kernels, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    add_arguments(p)
    sys.exit(run(p.parse_args()))
