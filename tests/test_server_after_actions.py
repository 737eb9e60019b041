"""After-stream actions shared by the workers on a host through a directory."""
import json

from offhook.server import after_actions
from offhook.server.after_actions import AfterActions
from offhook.server.media import AfterAction

VM = AfterAction("voicemail", "Leave a message.")


def test_one_process_puts_another_serves_once(tmp_path):
    a, b = AfterActions(tmp_path), AfterActions(tmp_path)
    a.put("CA1", VM)
    assert a.pending("CA1") and b.pending("CA1") is False  # b never heard of it, but the file is there
    assert b.pop("CA1") == VM
    assert a.pop("CA1") is None and b.pop("CA1") is None
    assert not a.pending("CA1") and list(tmp_path.iterdir()) == []


def test_without_a_directory_it_is_per_process():
    a = AfterActions(None)
    a.put("CA1", VM)
    assert a.pending("CA1") and a.pop("CA1") == VM and a.pop("CA1") is None


def test_odd_sids_never_name_files_and_stale_or_broken_files_are_dropped(tmp_path, monkeypatch):
    a = AfterActions(tmp_path)
    a.put("../../etc/passwd", VM)
    assert list(tmp_path.iterdir()) == [] and a.pop("../../etc/passwd") == VM  # kept in memory only
    (tmp_path / "CAold.json").write_text(json.dumps({"t": 0, "kind": "voicemail", "prompt": "", "number": ""}))
    (tmp_path / "CAbad.json").write_text("{not json")
    assert a.pop("CAold") is None and a.pop("CAbad") is None
    assert list(tmp_path.iterdir()) == []
    # a directory that cannot be written: this process still answers for its calls
    blocked = tmp_path / "file"
    blocked.write_text("x")
    c = AfterActions(blocked / "sub")
    c.put("CA2", VM)
    assert c.pending("CA2") and c.pop("CA2") == VM
    monkeypatch.setattr(after_actions, "TTL_S", -1.0)
    c.put("CA3", VM)
    c.put("CA4", VM)  # putting prunes expired entries
    assert not c.pending("CA3")
