"""offhook: a phone voice agent server (Twilio Media Streams, streaming STT -> LLM -> TTS)."""

__version__ = "0.1.0"
