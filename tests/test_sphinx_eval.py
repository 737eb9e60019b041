"""The offline recogniser's evaluation tool (python -m offhook.providers.sphinx_eval) measures what it says."""
import pytest

pytest.importorskip("pocketsphinx")
pytest.importorskip("espeakng_loader")

from offhook.providers.profile import sample_profile  # noqa: E402
from offhook.providers.sphinx import PocketSphinxSTT  # noqa: E402
from offhook.providers.sphinx_eval import evaluate, expected_sample, wer_counts  # noqa: E402


def test_word_edits():
    assert wer_counts("a b c".split(), "a b c".split()) == 0
    assert wer_counts("a b c".split(), "a x c d".split()) == 2
    assert wer_counts("a b".split(), []) == 2


def test_a_set_is_scored_phrase_by_phrase_on_one_call():
    profile = sample_profile()
    phrases = expected_sample(profile, 24)
    assert len(phrases) == 24 and set(phrases) <= set(profile.expected_phrases())
    stt = PocketSphinxSTT(profile.expected_phrases())
    r = evaluate(stt, "expected", ["what are your opening hours", "how much is a haircut", "yes please"], "en-us")
    assert (r.phrases, r.words) == (3, 12)
    assert r.wer <= 0.3 and r.exact >= 2          # in-domain sentences are mostly heard right
    assert 0.6 + 3 * 1.2 + 2.0 < r.audio_s < 0.6 + 3 * 1.2 + 6.0  # the noise around ~3 s of speech
    assert 0 < r.rtf < 0.5                        # far faster than real time
    nonsense = evaluate(stt, "off-domain", ["the quick brown fox jumps over the lazy dog"], "en-us")
    assert nonsense.wer > 0.5                     # words outside the model cannot come out
