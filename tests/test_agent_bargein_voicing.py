"""The barge-in detector's voicing check on realistic line audio: a cough, a crackle or a breath as
loud as the agent does not stop it, speech (eSpeak NG, the simulated caller's harmonic voice) does,
and as soon as it would have without the check.

Each signal goes through the real inbound path (mu-law line audio -> VAD and level) after half a
second of line noise, while the agent talks at -24 dBFS, as the call session feeds the detector."""
import numpy as np
import pytest

from offhook.agent.bargein import FRAME_S, LAG_MAX, BargeInDetector, periodicity
from offhook.audio import InboundPath, ulaw_decode, ulaw_encode
from offhook.sim.voice import comfort_noise, synthetic_voice

RATE = 8000
AGENT_DB = -24.0
LEAD_S = 0.5  # line noise before the sound


def to_ulaw(x: np.ndarray) -> bytes:
    return ulaw_encode(np.clip(x, -32768, 32767).astype("<i2").tobytes())


def at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x ** 2)) * 10 ** (dbfs / 20) * 32767


def detect(sound: bytes, **kw) -> list[tuple[float, float]]:
    """(decision time, onset) of each barge-in (the detector fires once per burst, so a phrase
    with pauses fires more than once), times from the start of the sound."""
    det, path = BargeInDetector(min_ms=100, **kw), InboundPath(stt_rate=8000, stt_encoding="ulaw")
    line = b"".join(comfort_noise(int(LEAD_S / FRAME_S))) + sound + b"".join(comfort_noise(25, seed=8))
    fired = []
    for i in range(len(line) // 160):
        frame = line[160 * i:160 * (i + 1)]
        _, speech, level = path.process(frame)
        now = (i + 1) * FRAME_S
        onset = det.frame(speech, level, AGENT_DB, now, frame)
        if onset is not None:
            fired.append((round(now - LEAD_S, 3), round(onset - LEAD_S, 3)))
    return fired


def cough(ms: int, seed: int) -> bytes:
    """The bench's cough: white noise, a 5 ms attack, an exponential decay."""
    n = 8 * ms
    x = np.random.default_rng(seed).standard_normal(n)
    env = np.exp(-np.linspace(0, 4, n)) * np.minimum(1, np.arange(n) / 40)
    return to_ulaw(x * env * 0.3 * 32767)


def noise_burst(ms: int, dbfs: float, seed: int = 0) -> bytes:
    return to_ulaw(at_dbfs(np.random.default_rng(seed).standard_normal(8 * ms), dbfs))


def crackle(ms: int, seed: int = 0) -> bytes:
    """A bad line or a fumbled handset: loud clicks at random 1-15 ms spacing."""
    rng = np.random.default_rng(seed)
    x = np.zeros(8 * ms)
    at = np.cumsum(rng.integers(8, 120, size=len(x) // 8))
    at = at[at < len(x) - 4]
    for i, a in enumerate(at):
        x[a:a + 4] = rng.choice([-1, 1]) * rng.uniform(0.4, 1.0) * 30000 * np.array([1, 0.6, -0.3, 0.1])
    return to_ulaw(x)


def breath(ms: int, dbfs: float, seed: int = 0) -> bytes:
    """Breath or wind on the mouthpiece: low-pass (brown) noise, smooth but not periodic."""
    x = np.cumsum(np.random.default_rng(seed).standard_normal(8 * ms))
    x -= np.convolve(x, np.ones(200) / 200, "same")
    return to_ulaw(at_dbfs(x, dbfs))


def espeak(text: str, dbfs: float = -18.0) -> bytes:
    pytest.importorskip("espeakng_loader")
    from offhook.providers.espeak import synthesize
    x = np.frombuffer(synthesize(text, rate=RATE), "<i2").astype(np.float64)
    x = x[np.flatnonzero(np.abs(x) > 300)[0]:]  # from the first sound, so onset 0 is where it starts
    return to_ulaw(at_dbfs(x, dbfs))


NOISES = ([pytest.param(cough(ms, seed), id=f"cough-{ms}ms") for seed, ms in enumerate((160, 200, 250))]
          + [pytest.param(noise_burst(ms, -18.0, seed=ms), id=f"noise-{ms}ms") for ms in (250, 600)]
          + [pytest.param(crackle(300), id="crackle-300ms"), pytest.param(breath(400, -18.0), id="breath-400ms")])


@pytest.mark.parametrize("sound", NOISES)
def test_loud_aperiodic_sounds_do_not_barge_in(sound):
    assert detect(sound) == []
    # what stops them is the voicing: as loud and as long as speech, they passed the other tests
    assert len(detect(sound, min_voiced=0)) == 1


SPOKEN = ("wait, are you open on saturday", "actually where are you located", "hold on, do you take cards",
          "sorry, how much is a haircut")


@pytest.mark.parametrize("text", SPOKEN)
def test_espeak_speech_over_the_agent_barges_in(text):
    fired = detect(espeak(text))
    assert fired
    decided, onset = fired[0]
    assert abs(onset) <= 0.021  # the onset is where the speech began, not where voicing was found
    unchecked, _ = detect(espeak(text), min_voiced=0)[0]
    if text.startswith("sorry"):
        # a voiceless opening ("sss...") waits for the vowel: eSpeak's comes ~180 ms in
        assert decided <= 0.26
    else:
        assert decided == unchecked  # a voiced start is decided exactly when it was before


def test_the_simulated_callers_voice_barges_in_at_min_ms():
    fired = detect(synthetic_voice("sorry, how much is a haircut"))
    assert fired == detect(synthetic_voice("sorry, how much is a haircut"), min_voiced=0)
    assert len(fired) == 1 and 0.100 <= fired[0][0] - fired[0][1] <= 0.121


def test_speech_straight_after_a_cough_still_barges_in():
    # no pause between them, so one burst from the cough's start; decided 100 ms into the words
    fired = detect(cough(200, 5) + espeak("wait, are you open on saturday"))
    assert fired and fired[0] == (0.3, 0.0)


def test_a_long_noise_never_adds_up_to_enough_voiced_frames():
    assert detect(noise_burst(3000, -15.0, seed=11)) == []


def test_periodicity_scores_a_voice_high_and_noise_low():
    voice = np.frombuffer(ulaw_decode(synthetic_voice("aaah")), "<i2")[800:1120]
    hiss = np.frombuffer(ulaw_decode(noise_burst(40, -18.0)), "<i2")
    assert periodicity(voice) > 0.9 and periodicity(hiss) < 0.35
    assert periodicity(np.zeros(320)) == 0.0
    with pytest.raises(ValueError):
        periodicity(np.ones(LAG_MAX))
