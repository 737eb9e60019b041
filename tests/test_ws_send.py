"""Direct binary writes on a trio-websocket client (providers/ws_send.py), against a real
trio-websocket server on loopback: what the server receives, in what order, and how a dead
connection is reported."""
import os
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import trio_websocket
from wsproto import ConnectionType, WSConnection

from offhook.providers.ws_send import direct_sender
from provider_helpers import mock_clock

pytestmark = pytest.mark.timeout(60)


async def _server(received: list, closed: trio.Event, *, task_status=trio.TASK_STATUS_IGNORED):
    async def handler(request):
        ws = await request.accept()
        try:
            while True:
                received.append(await ws.get_message())
        except trio_websocket.ConnectionClosed:
            closed.set()
    await trio_websocket.serve_websocket(handler, "127.0.0.1", 0, None, max_message_size=2**24,
                                         task_status=task_status)


@asynccontextmanager
async def connected(**kw):
    """A trio-websocket server on loopback and a client connected to it: (ws, its DirectSender,
    the messages the server received, set when the server saw the connection close)."""
    received, closed = [], trio.Event()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(_server, received, closed)
        async with trio_websocket.open_websocket("127.0.0.1", server.port, "/", use_ssl=False, **kw) as ws:
            yield ws, direct_sender(ws), received, closed
        nursery.cancel_scope.cancel()


async def _send(sender, ws, message):
    rest = sender.write_now(message)
    if rest is not None:
        with trio.CancelScope(shield=True):
            await sender.finish(rest)


@mock_clock
async def test_small_frames_go_out_intact_and_in_order_with_text_from_the_regular_path():
    async with connected() as (ws, sender, received, _):
        assert sender is not None
        sent = []
        for i in range(200):
            frame = bytes([i % 256]) * 160
            await _send(sender, ws, frame)
            sent.append(frame)
            if i % 50 == 49:
                text = f'{{"type": "KeepAlive", "n": {i}}}'
                await ws.send_message(text)
                sent.append(text)
        with trio.fail_after(5):
            while len(received) < len(sent):
                await trio.sleep(0.01)
        assert received == sent


@mock_clock
async def test_a_frame_the_socket_cannot_take_at_once_is_finished_under_the_lock():
    big = os.urandom(8 * 2**20)  # far more than a socket buffer: the kernel takes part of it
    async with connected(max_message_size=2**24) as (ws, sender, received, _):
        rest = sender.write_now(big)
        assert rest is not None and 0 < len(rest.data) < len(big)
        # another writer now must wait for the rest: its frame may not land inside ours
        async with trio.open_nursery() as writers:
            writers.start_soon(ws.send_message, "after")
            await trio.sleep(0)
            with trio.CancelScope(shield=True):
                await sender.finish(rest)
        # and a small frame queued while a regular send holds the lock goes out after it
        async with trio.open_nursery() as writers:
            writers.start_soon(ws.send_message, big)
            while not ws._stream_lock.locked():  # the regular send is mid-frame
                await trio.sleep(0)
            await _send(sender, ws, b"tail")
        with trio.fail_after(10):
            while len(received) < 4:
                await trio.sleep(0.01)
        assert received == [big, "after", big, b"tail"]


@mock_clock
async def test_a_closed_connection_raises_connection_closed():
    async with connected() as (ws, sender, received, closed):
        await _send(sender, ws, b"one")
        await ws.aclose()
        with pytest.raises(trio_websocket.ConnectionClosed):
            await _send(sender, ws, b"two")
        with trio.fail_after(5):
            await closed.wait()
        assert received == [b"one"]


@mock_clock
async def test_a_reset_socket_is_reported_as_connection_closed_not_a_crash():
    async with trio.open_nursery() as nursery:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]

        async def accept_handshake_then_reset():
            stream = await listener.accept()
            proto = WSConnection(ConnectionType.SERVER)
            while True:
                proto.receive_data(await stream.receive_some())
                for ev in proto.events():
                    from wsproto.events import AcceptConnection, Request
                    if isinstance(ev, Request):
                        await stream.send_all(proto.send(AcceptConnection()))
                        stream.socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER,
                                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        await stream.aclose()  # RST
                        return
        nursery.start_soon(accept_handshake_then_reset)
        async with trio_websocket.open_websocket("127.0.0.1", port, "/", use_ssl=False) as ws:
            sender = direct_sender(ws)
            with pytest.raises(trio_websocket.ConnectionClosed):
                with trio.fail_after(5):
                    while True:
                        await _send(sender, ws, b"x" * 160)
                        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


@mock_clock
async def test_no_direct_path_without_a_plain_socket():
    a, _ = trio.testing.memory_stream_pair()
    ws = trio_websocket.WebSocketConnection(a, WSConnection(ConnectionType.CLIENT), host="x", path="/")
    assert direct_sender(ws) is None  # TLS streams and other non-socket streams keep send_message


def test_client_frames_decode_to_the_payload_at_every_length_class():
    from wsproto.events import AcceptConnection, BytesMessage, Request

    from offhook.ws_frames import client_frame
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="x", target="/")))
    list(server.events())
    server.send(AcceptConnection())
    for n in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        payload = os.urandom(n)
        frame = client_frame(payload)
        assert frame[1] & 0x80  # masked, as a client's frames must be
        server.receive_data(frame)
        got = list(server.events())
        assert got and all(isinstance(e, BytesMessage) for e in got) and got[-1].message_finished
        assert b"".join(e.data for e in got) == payload
    # a fresh masking key per frame: the same payload never looks the same on the wire twice
    assert len({client_frame(b"\x00" * 160) for _ in range(20)}) == 20
