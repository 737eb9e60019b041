"""Server text frames built without wsproto (ws_frames.py), decoded by wsproto's client at every
length class; and when a connection may not use them (permessage-deflate negotiated)."""
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from offhook.ws_frames import plain_frames, server_text_frame


def test_server_text_frames_decode_to_the_text_at_every_length_class():
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="x", target="/")))
    list(server.events())
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    for n in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        text = ("é" + "x" * n)[:n] if n else ""
        frame = server_text_frame(text)
        assert not frame[1] & 0x80  # a server's frames are not masked
        client.receive_data(frame)
        got = list(client.events())
        assert got and all(isinstance(e, TextMessage) for e in got) and got[-1].message_finished
        assert "".join(e.data for e in got) == text


def test_a_connection_with_an_extension_keeps_wsproto_frames():
    assert plain_frames(Connection(ConnectionType.SERVER, [PerMessageDeflate()]))  # offered, not agreed
    deflate = PerMessageDeflate()
    deflate.accept("permessage-deflate")
    assert deflate.enabled()
    assert not plain_frames(Connection(ConnectionType.SERVER, [deflate]))
    assert not plain_frames(object())  # not a wsproto Connection we know
