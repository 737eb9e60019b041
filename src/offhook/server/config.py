"""Server configuration: environment variables, optionally overlaid by a TOML file.

Precedence: command-line flags > environment > TOML file > defaults. Unknown TOML keys and
unparseable values are errors at start-up (a typo must not silently run with defaults). Secrets are
kept out of repr() so a logged config never leaks them.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path


class ConfigError(ValueError):
    pass


def _bool(v: str | bool) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"not a boolean: {v!r}")


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None            # https base Twilio reaches (wss derived)
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    validate_signatures: bool = True
    mode: str = "agent"                      # "agent" | "echo" (diagnostic)
    data_dir: str = "offhook-data"
    database_url: str = field(default="", repr=False)
    metrics_token: str = field(default="", repr=False)
    pacer_lead_ms: int = 80
    mark_every_frames: int = 10
    max_message_bytes: int = 64 * 1024
    workers: int = 1                         # server processes sharing the port (SO_REUSEPORT)
    drain_timeout_s: float = 30.0            # on SIGTERM: how long active calls may go on before voicemail
    profile: str = ""                        # business profile TOML (default: the bundled sample)
    voicemail_prompt: str = "Sorry, I couldn't help with that. Please leave a message after the tone."
    handoff_number: str = ""                 # when set, handoff dials this number instead of voicemail
    providers: dict = field(default_factory=dict)  # [providers] table: stt/llm/tts choices and options
    server_id: str = ""                      # names this server in a shared call store (default: host name)
    recording_sample_rate: float = 0.1       # fraction of ordinary calls whose stereo WAV is kept
    recording_retention_days: float = 30.0   # recordings older than this are deleted
    recording_notice: str = "This call may be recorded for quality."  # spoken in the greeting; "" = none
    prices: dict = field(default_factory=dict)  # [prices] table: overrides offhook.observe.cost defaults
    # the agent (DESIGN §4-§6): barge-in, endpointing, fallbacks
    barge_in_min_ms: int = 100               # caller speech over the agent this long interrupts it
    endpoint_short_s: float = 0.25           # silence that ends a turn that looks complete
    endpoint_long_s: float = 0.9             # ... that looks unfinished ("and", "eight five oh")
    endpoint_cap_s: float = 3.0              # silence that ends a turn whatever was said
    speculative_pause_s: float = 0.15        # first pause that starts the LLM speculatively
    stall_after_s: float = 2.0               # no first LLM token this long after commit: stall phrase
    llm_timeout_s: float = 6.0               # no first LLM token by then: a failure (retried)
    llm_failures_handoff: int = 3            # consecutive LLM failures -> handoff line, voicemail/dial
    tts_first_audio_timeout_s: float = 1.2   # slower first TTS audio -> next TTS provider
    agent_prompt: str = ""                   # extra instructions appended to the system prompt
    handoff_line: str = "I'm sorry, I'm having trouble right now. Let me pass you on."

    ENV = {
        "OFFHOOK_HOST": "host", "OFFHOOK_PORT": "port", "OFFHOOK_PUBLIC_URL": "public_url",
        "TWILIO_ACCOUNT_SID": "twilio_account_sid", "TWILIO_AUTH_TOKEN": "twilio_auth_token",
        "OFFHOOK_VALIDATE_SIGNATURES": "validate_signatures", "OFFHOOK_MODE": "mode",
        "OFFHOOK_DATA_DIR": "data_dir", "DATABASE_URL": "database_url",
        "OFFHOOK_METRICS_TOKEN": "metrics_token", "OFFHOOK_PROFILE": "profile",
        "OFFHOOK_HANDOFF_NUMBER": "handoff_number", "OFFHOOK_SERVER_ID": "server_id",
        "OFFHOOK_RECORDING_SAMPLE_RATE": "recording_sample_rate",
        "OFFHOOK_RECORDING_RETENTION_DAYS": "recording_retention_days",
        "OFFHOOK_RECORDING_NOTICE": "recording_notice",
        "OFFHOOK_WORKERS": "workers", "OFFHOOK_DRAIN_TIMEOUT_S": "drain_timeout_s",
    }

    @classmethod
    def load(cls, path: str | None = None, env: dict[str, str] | None = None, **overrides) -> "Config":
        env = os.environ if env is None else env
        values: dict = {}
        known = {f.name for f in fields(cls)}
        if path:
            try:
                data = tomllib.loads(Path(path).read_text())
            except FileNotFoundError:
                raise ConfigError(f"config file not found: {path}") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{path}: not valid TOML: {e}") from None
            section = data.get("offhook", data)
            for k, v in section.items():
                if k not in known:
                    raise ConfigError(f"{path}: unknown setting {k!r}")
                values[k] = v
        for var, name in cls.ENV.items():
            if env.get(var) not in (None, ""):
                values[name] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls()
        for k, v in values.items():
            setattr(cfg, k, v)
        cfg._coerce()
        return cfg

    def _coerce(self) -> None:
        for name in ("port", "pacer_lead_ms", "mark_every_frames", "max_message_bytes", "workers"):
            try:
                setattr(self, name, int(getattr(self, name)))
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be an integer, got {getattr(self, name)!r}") from None
        self.validate_signatures = _bool(self.validate_signatures)
        if not (0 <= self.port <= 65535):
            raise ConfigError(f"port out of range: {self.port}")
        if self.mode not in ("agent", "echo"):
            raise ConfigError(f"mode must be 'agent' or 'echo', got {self.mode!r}")
        if self.public_url and not self.public_url.startswith(("https://", "http://")):
            raise ConfigError("OFFHOOK_PUBLIC_URL must start with https:// (or http:// for local use)")
        if self.validate_signatures and not self.twilio_auth_token:
            raise ConfigError("TWILIO_AUTH_TOKEN is required to validate Twilio signatures "
                              "(or run with --insecure-dev / OFFHOOK_VALIDATE_SIGNATURES=0 for local use)")
        if not (0 <= self.pacer_lead_ms <= 1000):
            raise ConfigError("pacer_lead_ms must be 0..1000")
        if not (1 <= self.workers <= 256):
            raise ConfigError(f"workers must be 1..256, got {self.workers}")
        try:
            self.drain_timeout_s = float(self.drain_timeout_s)
        except (TypeError, ValueError):
            raise ConfigError(f"drain_timeout_s must be a number, got {self.drain_timeout_s!r}") from None
        if not (0 <= self.drain_timeout_s <= 3600):
            raise ConfigError("drain_timeout_s must be 0..3600")
        if not isinstance(self.providers, dict):
            raise ConfigError("[providers] must be a table")
        for name in ("recording_sample_rate", "recording_retention_days"):
            try:
                setattr(self, name, float(getattr(self, name)))
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be a number, got {getattr(self, name)!r}") from None
        if not (0.0 <= self.recording_sample_rate <= 1.0):
            raise ConfigError("recording_sample_rate must be 0..1")
        if not (self.recording_retention_days > 0):
            raise ConfigError("recording_retention_days must be > 0")
        if not isinstance(self.prices, dict):
            raise ConfigError("[prices] must be a table")
        self._coerce_agent()
        if self.database_url and not self.database_url.startswith(("postgresql://", "postgres://", "sqlite:")):
            raise ConfigError("DATABASE_URL must start with postgresql:// (or be empty for SQLite in data_dir)")

    def _coerce_agent(self) -> None:
        def num(name: str, lo: float, hi: float, kind=float) -> None:
            try:
                v = kind(getattr(self, name))
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be a number, got {getattr(self, name)!r}") from None
            if not (lo <= v <= hi):
                raise ConfigError(f"{name} must be {lo:g}..{hi:g}, got {v:g}")
            setattr(self, name, v)
        num("barge_in_min_ms", 20, 2000, int)
        num("endpoint_short_s", 0.05, 5.0)
        num("endpoint_long_s", 0.05, 10.0)
        num("endpoint_cap_s", 0.1, 30.0)
        num("speculative_pause_s", 0.02, 5.0)
        num("stall_after_s", 0.1, 30.0)
        num("llm_timeout_s", 0.5, 120.0)
        num("llm_failures_handoff", 1, 100, int)
        num("tts_first_audio_timeout_s", 0.1, 30.0)
        if not (self.endpoint_short_s <= self.endpoint_long_s <= self.endpoint_cap_s):
            raise ConfigError("endpoint silences must be ordered: endpoint_short_s <= endpoint_long_s <= endpoint_cap_s")
        if self.stall_after_s >= self.llm_timeout_s:
            raise ConfigError("stall_after_s must be shorter than llm_timeout_s")
