"""ClaudeLLM (the real anthropic SDK under trio) against the Anthropic emulator over real loopback HTTP.

Client and emulator share one trio run under MockClock(autojump_threshold=0.01): the emulator's
latencies and the client's deadlines are exact in trio time, so "times out at 2.0 s" is asserted
exactly and instantly.
"""
import functools
import json
import re

import httpx
import pytest
import trio
import trio.testing

from offhook.providers.anthropic_llm import ClaudeConfigError, ClaudeLLM
from offhook.providers.base import (LLMBadRequest, LLMConnectionError, LLMError, LLMOverloaded,
                                    LLMRateLimited, LLMServerError, LLMStream, LLMTimeout, LLMUsage)
from offhook.sim.emulators.anthropic import anthropic_emulator
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile

pytestmark = pytest.mark.timeout(30)

PROFILE = LatencyProfile(first_s=0.3, gap_s=0.05)
REPLY = "Sure, we open at nine tomorrow."
TOKENS = ["Sure,", " we", " open", " at", " nine", " tomorrow."]
MESSAGES = [{"role": "user", "content": "When do you open tomorrow?"}]


def mock_clock(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=0.01))
    return wrapper


def reply(text=REPLY):
    return lambda messages, system: text


def claude(emu, **kw) -> ClaudeLLM:
    kw.setdefault("api_key", emu.api_key)
    kw.setdefault("first_token_timeout", 2.0)
    kw.setdefault("inter_token_timeout", 1.0)
    return ClaudeLLM(base_url=emu.base_url, **kw)


async def collect(llm, messages=MESSAGES, system="You are a receptionist.", **kw):
    """(stream, [(t since start, delta)]) of one whole reply."""
    t0 = trio.current_time()
    async with llm.stream(messages, system=system, **kw) as s:
        got = [(trio.current_time() - t0, t) async for t in s]
    return s, got


# ---------------------------------------------------------------- configuration
def test_missing_key_is_a_clear_error_and_the_key_never_shows(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ClaudeConfigError, match="ANTHROPIC_API_KEY"):
        ClaudeLLM()
    with pytest.raises(ClaudeConfigError, match="ANTHROPIC_API_KEY"):
        ClaudeLLM(api_key="  ")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-123")
    llm = ClaudeLLM(model="claude-x")
    assert llm.model == "claude-x" and llm.name == "anthropic"
    assert "sk-ant-secret" not in repr(llm) and "sk-ant-secret" not in repr(vars(llm))
    with pytest.raises(ClaudeConfigError, match="max_tokens"):
        ClaudeLLM(max_tokens=0)
    with pytest.raises(ClaudeConfigError, match="temperature"):
        ClaudeLLM(temperature=1.5)


@mock_clock
async def test_base_url_from_the_sdks_own_env_variable(monkeypatch):
    async with anthropic_emulator(responder=reply()) as emu:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", emu.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", emu.api_key)
        async with ClaudeLLM() as llm:
            _, got = await collect(llm)
    assert "".join(t for _, t in got) == REPLY
    assert len(emu.requests) == 1


# ---------------------------------------------------------------- streaming
@mock_clock
async def test_deltas_arrive_in_order_at_the_emulated_times():
    async with anthropic_emulator(profile=PROFILE, responder=reply()) as emu:
        async with claude(emu, model="claude-test", max_tokens=200, temperature=0.3) as llm:
            s, got = await collect(llm)
    assert isinstance(s, LLMStream)
    assert [t for _, t in got] == TOKENS
    assert [round(at, 6) for at, _ in got] == [0.3, 0.35, 0.4, 0.45, 0.5, 0.55]
    assert s.first_token_latency == pytest.approx(0.3, abs=1e-9)
    assert s.stop_reason == "end_turn"
    assert emu.requests[0].outcome == "complete"


@mock_clock
async def test_request_headers_and_body_on_the_wire():
    async with anthropic_emulator(profile=PROFILE, responder=reply()) as emu:
        async with claude(emu, model="claude-test", max_tokens=200, temperature=0.3, effort="low") as llm:
            await collect(llm, system="You are the receptionist of Maple Street.")
    req = emu.requests[0]
    assert req.method == "POST" and req.path == "/v1/messages"
    assert req.headers["x-api-key"] == emu.api_key
    assert req.headers["authorization"] == f"Bearer {emu.api_key}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", req.headers["anthropic-version"])
    assert req.headers["x-stainless-retry-count"] == "0"
    assert req.headers["x-stainless-async"] == "async:trio"
    body = req.body
    assert body["model"] == "claude-test" and body["max_tokens"] == 200 and body["temperature"] == 0.3
    assert body["output_config"] == {"effort": "low"}
    assert body["stream"] is True
    assert body["messages"] == MESSAGES
    assert body["system"] == [{"type": "text", "text": "You are the receptionist of Maple Street.",
                               "cache_control": {"type": "ephemeral"}}]


@mock_clock
async def test_usage_and_prompt_cache_accounting():
    long_prompt = "You answer the phone for a hair studio. " * 110   # 4400 chars: 1100 tokens >= 1024
    async with anthropic_emulator(responder=reply()) as emu:
        async with claude(emu) as llm:
            first, _ = await collect(llm, system=long_prompt)
            second, _ = await collect(llm, system=long_prompt)
            short, _ = await collect(llm, system="Be brief.")
    # "When do you open tomorrow?" = 26 chars -> 7 tokens; six text deltas
    assert first.usage == LLMUsage(input_tokens=7, output_tokens=6, cache_read_tokens=0, cache_write_tokens=1100)
    assert second.usage == LLMUsage(input_tokens=7, output_tokens=6, cache_read_tokens=1100, cache_write_tokens=0)
    assert short.usage == LLMUsage(input_tokens=7 + 3, output_tokens=6)  # below the cacheable minimum
    assert [r.usage["output_tokens"] for r in emu.requests] == [6, 6, 6]
    assert len(emu.connections) == 1  # the SDK's pool kept the connection alive across requests


@mock_clock
async def test_max_tokens_cuts_the_reply():
    async with anthropic_emulator(responder=reply()) as emu:
        async with claude(emu) as llm:
            s, got = await collect(llm, max_tokens=3)
    assert "".join(t for _, t in got) == "Sure, we open"
    assert s.stop_reason == "max_tokens" and s.usage.output_tokens == 3
    assert emu.requests[0].body["max_tokens"] == 3


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("status,error,error_type", [
    (429, LLMRateLimited, "rate_limit_error"),
    (500, LLMServerError, "api_error"),
    (529, LLMOverloaded, "overloaded_error"),
    (400, LLMBadRequest, "invalid_request_error"),
    (403, LLMBadRequest, "permission_error"),
])
@mock_clock
async def test_error_status_is_the_typed_error_without_retries(status, error, error_type):
    async with anthropic_emulator(profile=PROFILE, faults=FaultPlan([Fault("error", status=status)]),
                                  responder=reply()) as emu:
        async with claude(emu) as llm:
            t0 = trio.current_time()
            with pytest.raises(error) as info:
                await collect(llm)
            assert trio.current_time() - t0 == pytest.approx(0.0, abs=1e-9)
            _, got = await collect(llm)  # the next request is served normally
    assert "".join(t for _, t in got) == REPLY
    assert error_type in str(info.value) and emu.api_key not in str(info.value)
    assert info.value.retryable is (status not in (400, 403))
    assert [r.status for r in emu.requests] == [status, 200]  # max_retries=0: one attempt


@mock_clock
async def test_wrong_key_and_wrong_path_are_bad_requests():
    async with anthropic_emulator(responder=reply()) as emu:
        async with ClaudeLLM(api_key="sk-wrong", base_url=emu.base_url) as llm:
            with pytest.raises(LLMBadRequest, match="authentication_error") as info:
                await collect(llm)
        assert "sk-wrong" not in str(info.value)
        async with ClaudeLLM(api_key=emu.api_key, base_url=emu.base_url + "/nowhere") as llm:
            with pytest.raises(LLMBadRequest, match="not_found_error"):
                await collect(llm)
    assert [r.status for r in emu.requests] == [401, 404]


@mock_clock
async def test_error_event_after_the_stream_started():
    fault = Fault("error", after_s=0.42, status=529)  # after the 3rd delta (0.30, 0.35, 0.40)
    async with anthropic_emulator(profile=PROFILE, faults=FaultPlan([fault]), responder=reply()) as emu:
        async with claude(emu) as llm:
            got = []
            with pytest.raises(LLMOverloaded, match="overloaded_error"):
                async with llm.stream(MESSAGES, system="x") as s:
                    async for t in s:
                        got.append(t)
    assert got == TOKENS[:3]
    assert emu.requests[0].status == 200 and emu.requests[0].error_type == "overloaded_error"


@mock_clock
async def test_no_response_at_all_times_out_at_the_first_token_deadline():
    async with anthropic_emulator(profile=PROFILE, faults=FaultPlan([Fault("hang")]), responder=reply()) as emu:
        async with claude(emu, first_token_timeout=2.0) as llm:
            t0 = trio.current_time()
            with pytest.raises(LLMTimeout, match="2"):
                await collect(llm)
            t_err = trio.current_time()
            await emu.wait_until(lambda: emu.requests[0].disconnected_at is not None, timeout=1)
    assert t_err - t0 == pytest.approx(2.0, abs=1e-9)
    assert emu.requests[0].status is None  # not even a status line was sent
    assert emu.requests[0].disconnected_at - t_err < 0.01  # and the client dropped the connection


@mock_clock
async def test_stall_mid_body_times_out_at_the_inter_token_deadline():
    fault = Fault("hang", after_s=0.37)  # after 0.30 and 0.35
    async with anthropic_emulator(profile=PROFILE, faults=FaultPlan([fault]), responder=reply()) as emu:
        async with claude(emu, first_token_timeout=2.0, inter_token_timeout=1.0) as llm:
            t0 = trio.current_time()
            got = []
            with pytest.raises(LLMTimeout, match="stalled"):
                async with llm.stream(MESSAGES, system="x") as s:
                    async for t in s:
                        got.append(t)
            t_err = trio.current_time() - t0
            await emu.wait_until(lambda: emu.requests[0].disconnected_at is not None, timeout=1)
    assert got == TOKENS[:2]
    assert t_err == pytest.approx(0.35 + 1.0, abs=1e-9)
    assert emu.requests[0].outcome == "hang" and emu.requests[0].text == "".join(TOKENS[:2])


@mock_clock
async def test_slow_drip_first_token_past_the_deadline_times_out():
    async with anthropic_emulator(profile=PROFILE, faults=FaultPlan([Fault("drip", drip_s=2.5)]),
                                  responder=reply()) as emu:
        async with claude(emu, first_token_timeout=2.0) as llm:
            t0 = trio.current_time()
            with pytest.raises(LLMTimeout):
                await collect(llm)
            assert trio.current_time() - t0 == pytest.approx(2.0, abs=1e-9)
    assert emu.requests[0].status == 200 and emu.requests[0].text == ""


@mock_clock
async def test_slow_drip_within_the_deadlines_delivers_everything_late():
    fault = Fault("drip", after_s=0.32, drip_s=0.8)
    async with anthropic_emulator(profile=PROFILE, faults=FaultPlan([fault]), responder=reply()) as emu:
        async with claude(emu, inter_token_timeout=1.0) as llm:
            s, got = await collect(llm)
    assert [t for _, t in got] == TOKENS
    assert [round(at, 6) for at, _ in got] == [0.3, 1.1, 1.9, 2.7, 3.5, 4.3]


@pytest.mark.parametrize("after_s", [0.0, 0.37])
@mock_clock
async def test_connection_closed_is_a_connection_error(after_s):
    async with anthropic_emulator(profile=PROFILE, faults=FaultPlan([Fault("close", after_s=after_s)]),
                                  responder=reply()) as emu:
        async with claude(emu) as llm:
            got = []
            t0 = trio.current_time()
            with pytest.raises(LLMConnectionError):
                async with llm.stream(MESSAGES, system="x") as s:
                    async for t in s:
                        got.append(t)
            assert trio.current_time() - t0 == pytest.approx(after_s, abs=1e-9)
            _, again = await collect(llm)  # a fresh connection for the next request
    assert got == ([] if after_s == 0 else TOKENS[:2])
    assert "".join(t for _, t in again) == REPLY
    assert len(emu.connections) == 2


@mock_clock
async def test_malformed_event_is_a_server_error():
    async with anthropic_emulator(profile=PROFILE, faults=FaultPlan([Fault("malformed", after_s=0.37)]),
                                  responder=reply()) as emu:
        async with claude(emu) as llm:
            got = []
            with pytest.raises(LLMServerError, match="malformed"):
                async with llm.stream(MESSAGES, system="x") as s:
                    async for t in s:
                        got.append(t)
    assert got == TOKENS[:2]


@mock_clock
async def test_unreachable_server_is_a_connection_error():
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there any more
    async with ClaudeLLM(api_key="k", base_url=f"http://127.0.0.1:{port}") as llm:
        with pytest.raises(LLMConnectionError) as info:
            await collect(llm)
    assert isinstance(info.value, LLMError) and info.value.retryable


# ---------------------------------------------------------------- cancellation
@mock_clock
async def test_cancellation_closes_the_connection_at_once_and_the_client_stays_usable():
    async with anthropic_emulator(profile=PROFILE, responder=reply()) as emu:
        async with claude(emu) as llm:
            got = []
            with trio.CancelScope() as scope:
                async with llm.stream(MESSAGES, system="x") as s:
                    async for t in s:
                        got.append(t)
                        if len(got) == 3:
                            cancelled_at = trio.current_time()
                            scope.cancel()
            await emu.wait_until(lambda: emu.requests[0].disconnected_at is not None, timeout=1)
            _, again = await collect(llm)
    assert got == TOKENS[:3]
    assert emu.requests[0].disconnected_at - cancelled_at < 0.005
    assert emu.requests[0].outcome == "client_closed" and emu.requests[0].text == "".join(TOKENS[:3])
    assert "".join(t for _, t in again) == REPLY


@mock_clock
async def test_cancellation_while_waiting_for_the_first_token():
    async with anthropic_emulator(profile=LatencyProfile(first_s=1.5), responder=reply()) as emu:
        async with claude(emu) as llm:
            with trio.move_on_after(0.5):
                await collect(llm)
            t_cancel = trio.current_time()
            await emu.wait_until(lambda: emu.requests[0].disconnected_at is not None, timeout=1)
    assert emu.requests[0].disconnected_at - t_cancel < 0.005
    assert emu.requests[0].text == ""


# ---------------------------------------------------------------- the emulator's own wire behaviour
@mock_clock
async def test_emulator_rejects_like_the_api():
    async with anthropic_emulator(responder=reply()) as emu:
        async with httpx.AsyncClient(base_url=emu.base_url) as http:
            ok_body = {"model": "m", "max_tokens": 5, "messages": MESSAGES}
            r = await http.post("/v1/messages", json=ok_body)
            assert r.status_code == 401
            assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
            headers = {"x-api-key": emu.api_key}
            r = await http.post("/v1/messages", json={"model": "m", "messages": MESSAGES}, headers=headers)
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
            assert "max_tokens" in r.json()["error"]["message"]
            r = await http.post("/v1/messages", content=b"{not json", headers=headers)
            assert r.status_code == 400
            r = await http.post("/v1/messages", json=ok_body, headers=headers)  # not streaming: one Message
            assert r.status_code == 200 and r.headers["request-id"].startswith("req_")
            message = r.json()
            r = await http.post("/v1/messages", json={**ok_body, "stream": True}, headers=headers)
            assert r.headers["content-type"].startswith("text/event-stream")
            text = r.text
    assert message["content"] == [{"type": "text", "text": "Sure, we open at nine"}]
    assert message["stop_reason"] == "max_tokens" and message["usage"]["output_tokens"] == 5
    events = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 5 + \
        ["content_block_stop", "message_delta", "message_stop"]
    data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert data[0]["message"]["usage"]["input_tokens"] == 7 and data[0]["message"]["role"] == "assistant"
    assert "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta") == "Sure, we open at nine"
    assert data[-2]["usage"]["output_tokens"] == 5 and data[-2]["delta"]["stop_reason"] == "max_tokens"
