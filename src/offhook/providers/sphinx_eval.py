"""How well the offline recogniser understands a business's callers: word error rate and real-time
factor of PocketSphinx with the domain language model built from a business profile (as the
provider factory builds it), on phrases spoken by eSpeak NG over a phone-band line.

    python -m offhook.providers.sphinx_eval                  # the bundled sample profile
    python -m offhook.providers.sphinx_eval --profile my_business.toml --voices en-us en-us+m3

Three sets of phrases: "expected" are the caller sentences the profile's language model is built
from (what the model is for), "answers" are the short replies of a booking dialogue (yes/no, days,
times, phone numbers), "paraphrases" say the same things in words the model was not built from
(what real callers also do; expect these to be poor). A set is spoken as one call: the phrases
one after another with 1.2 s of line noise between them, 8 kHz μ-law as Twilio carries it, fed in
20 ms frames; a phrase's hypothesis is the finals that overlap it, joined. WER = word edits / reference words over the set. RTF = processing
time (send + finalize, this machine's CPU) / audio seconds. eSpeak is not a human voice: these
numbers say what the model can do, not what a real line will give.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import trio

from offhook.audio import FRAME_BYTES, ulaw_encode
from offhook.providers.base import Final
from offhook.providers.espeak import synthesize
from offhook.providers.profile import BusinessProfile, load_profile, sample_profile
from offhook.providers.sphinx import PocketSphinxSTT, normalise

ANSWERS = [
    "yes", "no thank you", "yes please", "that's right", "no that's wrong", "tuesday", "on friday",
    "at three", "saturday morning", "my number is five five five eight six seven five three oh nine",
    "my number is two oh six four one nine eight eight three two", "tomorrow afternoon", "thank you goodbye",
]
PARAPHRASES = [
    "when do you guys open in the morning", "are you open at the weekend", "what do you charge for a trim",
    "could i get a haircut tomorrow", "is it possible to speak with somebody", "where exactly is the shop",
    "can i leave my car somewhere nearby", "do you accept credit cards", "how late are you open on thursday",
    "i need to move my appointment",
]


def expected_sample(profile: BusinessProfile, n: int = 24) -> list[str]:
    """n of the profile's expected phrases, evenly spread over the list (it groups by kind)."""
    phrases = [p for p in profile.expected_phrases() if len(p.split()) >= 2]
    step = max(1, len(phrases) // n)
    return phrases[::step][:n]


def wer_counts(ref: list[str], hyp: list[str]) -> int:
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(hyp) + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
    return d[-1]


@dataclass
class SetResult:
    name: str
    voice: str
    phrases: int
    words: int
    errors: int
    audio_s: float
    cpu_s: float
    exact: int
    worst: list[tuple[str, str]]

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.words)

    @property
    def rtf(self) -> float:
        return self.cpu_s / max(1e-9, self.audio_s)


def _line_noise(rng: np.random.Generator, seconds: float) -> bytes:
    return ulaw_encode((rng.standard_normal(int(8000 * seconds)) * 30).astype("<i2").tobytes())


async def _recognise(stt: PocketSphinxSTT, audio: bytes) -> tuple[list[Final], float]:
    finals: list[Final] = []
    cpu = 0.0
    async with stt.stream() as stream:
        for i in range(0, len(audio), FRAME_BYTES):
            t = time.perf_counter()
            await stream.send(audio[i:i + FRAME_BYTES])
            cpu += time.perf_counter() - t
        t = time.perf_counter()
        await stream.finalize()
        cpu += time.perf_counter() - t
        stream.close()
        finals = [ev async for ev in stream if isinstance(ev, Final) and ev.text]
    return finals, cpu


def evaluate(stt: PocketSphinxSTT, name: str, phrases: list[str], voice: str, seed: int = 7) -> SetResult:
    """The set as one call: the phrases one after another with 1.2 s of line noise between them
    (a recogniser adapts to the line as a call goes on); each final goes to the phrase whose
    span it overlaps most."""
    rng = np.random.default_rng(seed)
    audio, spans = _line_noise(rng, 0.6), []
    for phrase in phrases:
        speech = ulaw_encode(synthesize(phrase, 8000, voice=voice))
        spans.append((len(audio) / 8000, (len(audio) + len(speech)) / 8000))
        audio += speech + _line_noise(rng, 1.2)
    finals, cpu = trio.run(_recognise, stt, audio)
    heard: list[list[str]] = [[] for _ in phrases]
    for f in finals:
        overlap = [min(f.end, e) - max(f.start, s) for s, e in spans]
        heard[int(np.argmax(overlap))].append(f.text)
    res = SetResult(name, voice, len(phrases), 0, 0, len(audio) / 8000, cpu, 0, [])
    misses = []
    for phrase, texts in zip(phrases, heard):
        ref, hyp = normalise(phrase), " ".join(texts)
        errors = wer_counts(ref, hyp.split())
        res.words += len(ref)
        res.errors += errors
        res.exact += errors == 0
        if errors:
            misses.append((errors / len(ref), " ".join(ref), hyp))
    res.worst = [(r, h) for _, r, h in sorted(misses, reverse=True)[:3]]
    return res


class GeneralModelSTT(PocketSphinxSTT):
    """The baseline: the same recogniser with PocketSphinx's general en-US language model and full
    dictionary instead of the domain model."""

    def decoder(self):  # type: ignore[override]
        import pocketsphinx
        return pocketsphinx.Decoder(samprate=16000, fwdflat=False, loglevel="FATAL")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", help="business profile TOML (default: the bundled sample)")
    p.add_argument("--voices", nargs="+", default=["en-us", "en-us+m3"], help="eSpeak voices to speak with")
    p.add_argument("--general", action="store_true",
                   help="also run the expected set with the general en-US model (slow: ~0.5 s per audio second)")
    args = p.parse_args(argv)
    profile = load_profile(args.profile) if args.profile else sample_profile()
    t = time.perf_counter()
    stt = PocketSphinxSTT(profile.expected_phrases())
    print(f"domain model for {profile.name!r}: {len(stt.vocabulary)} words, built in "
          f"{(time.perf_counter() - t) * 1000:.0f} ms; words without a pronunciation: "
          f"{', '.join(stt.missing_words) or 'none'}")
    sets = {"expected": expected_sample(profile), "answers": ANSWERS, "paraphrases": PARAPHRASES}
    print(f"{'set':<12} {'voice':<10} {'phrases':>7} {'words':>6} {'WER':>6} {'exact':>6} {'RTF':>7}")
    for voice in args.voices:
        for name, phrases in sets.items():
            r = evaluate(stt, name, phrases, voice)
            print(f"{r.name:<12} {r.voice:<10} {r.phrases:>7} {r.words:>6} {r.wer:>6.3f} "
                  f"{r.exact:>3}/{r.phrases:<2} {r.rtf:>7.4f}")
            for ref, hyp in r.worst:
                print(f"    {ref!r} -> {hyp!r}")
    if args.general:
        general = GeneralModelSTT(["baseline"])
        for voice in args.voices:
            r = evaluate(general, "expected", sets["expected"], voice)
            print(f"general LM: {r.name:<12} {r.voice:<10} {r.phrases:>7} {r.words:>6} {r.wer:>6.3f} "
                  f"{r.exact:>3}/{r.phrases:<2} {r.rtf:>7.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
