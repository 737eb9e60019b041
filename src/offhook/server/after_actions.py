"""What Twilio is told when a call's media stream ends (voicemail, a person), kept by call sid.

The stream ends in the process that held its WebSocket, but Twilio's `<Connect action>` request is a
new HTTP request that, with several workers on one port, the kernel may hand to any of them. So an
action is kept in memory and also as a small file in a directory every worker on the host shares
(`<data_dir>/after-actions`); whichever process gets the request claims the file with an atomic rename.
Hanging up is the default and is never stored. Actions nobody asked for expire after an hour. A single
process (workers = 1) keeps them in memory only.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from offhook.server.media import AfterAction

log = logging.getLogger("offhook.server")

TTL_S = 3600.0
_SID = re.compile(r"^[A-Za-z0-9]{1,64}$")  # a Twilio sid; anything else never names a file


class AfterActions:
    def __init__(self, directory: str | Path | None = None):
        self.dir = Path(directory) if directory else None
        self._mem: dict[str, tuple[float, AfterAction]] = {}
        self._shared: set[str] = set()  # written to the directory: the file, not memory, decides

    def _file(self, sid: str) -> Path | None:
        return self.dir / f"{sid}.json" if self.dir is not None and _SID.match(sid) else None

    def put(self, sid: str, action: AfterAction) -> None:
        now = time.time()
        self._mem[sid] = (now, action)
        for old, (t, _) in list(self._mem.items()):
            if now - t > TTL_S:
                del self._mem[old]
                self._shared.discard(old)
        path = self._file(sid)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"t": now, "kind": action.kind, "prompt": action.prompt,
                                       "number": action.number}))
            tmp.replace(path)
            self._shared.add(sid)
        except OSError as e:  # this process can still answer for the call
            log.warning("call %s: could not share its after-stream action with other workers: %s", sid, e)

    def pop(self, sid: str) -> AfterAction | None:
        mine = self._mem.pop(sid, None)
        shared = sid in self._shared
        self._shared.discard(sid)
        path = self._file(sid)
        if path is None:
            return mine[1] if mine else None
        claimed = path.with_suffix(f".taken{os.getpid()}")
        try:
            path.rename(claimed)  # atomic: one process gets it
        except OSError:  # not there: another worker served it (or it was never shared)
            return None if shared else (mine[1] if mine else None)
        try:
            d = json.loads(claimed.read_text())
            if time.time() - float(d["t"]) > TTL_S:
                return None
            return AfterAction(str(d["kind"]), str(d["prompt"]), str(d["number"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("call %s: unreadable after-stream action file: %s", sid, e)
            return mine[1] if mine else None
        finally:
            claimed.unlink(missing_ok=True)

    def pending(self, sid: str) -> bool:
        """Not yet asked for (by this process or, when shared, by any)."""
        if sid in self._shared:
            path = self._file(sid)
            if path is not None and path.exists():
                return True
            self._shared.discard(sid)
            self._mem.pop(sid, None)
            return False
        return sid in self._mem
