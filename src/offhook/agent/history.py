"""The conversation as the LLM sees it: Anthropic-style messages holding what the caller *heard*.

An interrupted reply is cut to the words that played before the barge-in; a reply nobody heard is
dropped, and two caller turns in a row are merged, so the messages always alternate and always
start with the caller.
"""
from __future__ import annotations


class History:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def request(self, user_text: str) -> list[dict]:
        """The messages for a request answering `user_text` (history unchanged)."""
        msgs = [dict(m) for m in self.messages]
        if msgs and msgs[-1]["role"] == "user":
            msgs[-1]["content"] = f"{msgs[-1]['content']} {user_text}".strip()
        else:
            msgs.append({"role": "user", "content": user_text})
        return msgs

    def add_user(self, text: str) -> None:
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages[-1]["content"] = f"{self.messages[-1]['content']} {text}".strip()
        else:
            self.messages.append({"role": "user", "content": text})

    def add_assistant(self, text: str = "") -> dict:
        """A new assistant message (returned so the reply can update it as it is spoken or cut).
        Only after a caller message: the LLM never sees an assistant turn first."""
        msg = {"role": "assistant", "content": text}
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages.append(msg)
        return msg

    def set_assistant(self, msg: dict, text: str) -> None:
        """Replace what an assistant message says; an empty one is removed."""
        msg["content"] = text.strip()
        present = any(m is msg for m in self.messages)
        if not msg["content"] and present:
            self.messages[:] = [m for m in self.messages if m is not msg]
            self._merge()

    def last_assistant_text(self) -> str:
        for m in reversed(self.messages):
            if m["role"] == "assistant":
                return m["content"]
        return ""

    def _merge(self) -> None:
        out: list[dict] = []
        for m in self.messages:
            if out and out[-1]["role"] == m["role"]:
                out[-1]["content"] = f"{out[-1]['content']} {m['content']}".strip()
            else:
                out.append(m)
        self.messages[:] = out
