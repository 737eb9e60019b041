"""hypercorn's socket I/O fast paths (server/hypercorn_io.py), through a real hypercorn server on
loopback: a response bigger than any socket buffer (the rest goes out under the lock), a burst of
WebSocket messages from two tasks at once, all intact and in order; reads without a per-read scope,
ending cleanly when the peer goes."""
import os
from functools import partial

import pytest
import trio
import trio_websocket
from hypercorn.trio import serve
from hypercorn.trio import tcp_server

from offhook.server import hypercorn_io
from offhook.server.run import hypercorn_config  # importing the server module installs the patches
from provider_helpers import mock_clock

pytestmark = pytest.mark.timeout(60)
BIG = os.urandom(6 * 2**20)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"].rsplit(".", 1)[1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    elif scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(BIG)).encode())]})
        await send({"type": "http.response.body", "body": BIG})
    elif scope["type"] == "websocket" and scope["path"] == "/now":
        await written_now(receive, send)
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})

        async def burst(tag):
            for i in range(300):
                await send({"type": "websocket.send", "text": f"{tag}{i}"})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(burst, "a")
            nursery.start_soon(burst, "b")
        await send({"type": "websocket.send", "bytes": BIG})
        await receive()  # until the client closes


CHUNK = "x" * 2**16


async def written_now(receive, send):
    """Messages written from synchronous code (as the playback ticker does), mixed with the ASGI path."""
    await receive()
    await send({"type": "websocket.accept"})
    send_now = hypercorn_io.text_sender(send)
    assert send_now is not None
    for i in range(100):
        if i % 3:
            assert send_now(f"s{i}") is True
        else:
            await send({"type": "websocket.send", "text": f"s{i}"})
    k, rest = 0, None
    while rest is None:  # the client is not reading yet: until the kernel takes a message in part
        sent = send_now(f"{k}:{CHUNK}")
        assert sent is not False
        k += 1
        if sent is not True:
            rest = sent
    assert send_now("refused") is False  # the half-written message holds the socket
    async with trio.open_nursery() as n:
        n.start_soon(rest)  # finished, and the lock released, by another task than the one that took it
    assert send_now(f"end {k}") is not False
    await receive()


async def _serving(nursery):
    hc = hypercorn_config("127.0.0.1", 0, 2**24)
    binds = await nursery.start(partial(serve, app, hc, mode="asgi"))
    return binds[0].rsplit(":", 1)[1]


def test_the_patches_are_installed_for_this_hypercorn():
    assert tcp_server.TCPServer.protocol_send is hypercorn_io.protocol_send
    assert tcp_server.TCPServer._read_data is hypercorn_io._read_data


@mock_clock
async def test_a_response_larger_than_the_socket_buffer_arrives_whole():
    async with trio.open_nursery() as nursery:
        port = await _serving(nursery)
        stream = await trio.open_tcp_stream("127.0.0.1", int(port))
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = bytearray()
        with trio.fail_after(20):
            while chunk := await stream.receive_some(2**16):
                data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == BIG
        nursery.cancel_scope.cancel()


@mock_clock
async def test_websocket_messages_from_two_tasks_arrive_whole_and_each_task_in_order():
    async with trio.open_nursery() as nursery:
        port = await _serving(nursery)
        async with trio_websocket.open_websocket("127.0.0.1", int(port), "/", use_ssl=False,
                                                 max_message_size=2**24) as ws:
            got = []
            with trio.fail_after(20):
                while len(got) < 601:
                    got.append(await ws.get_message())
        for tag in "ab":
            assert [m for m in got[:600] if m[0] == tag] == [f"{tag}{i}" for i in range(300)]
        assert got[600] == BIG
        nursery.cancel_scope.cancel()


@mock_clock
async def test_messages_written_from_synchronous_code_arrive_whole_and_in_order():
    async def not_hypercorn(message):
        pass
    assert hypercorn_io.text_sender(not_hypercorn) is None
    async with trio.open_nursery() as nursery:
        port = await _serving(nursery)
        async with trio_websocket.open_websocket("127.0.0.1", int(port), "/now", use_ssl=False,
                                                 max_message_size=2**24) as ws:
            await trio.sleep(1)
            got = []
            with trio.fail_after(20):
                while not (got and got[-1].startswith("end")):
                    got.append(await ws.get_message())
        k = int(got[-1].split()[1])
        assert got == [f"s{i}" for i in range(100)] + [f"{j}:{CHUNK}" for j in range(k)] + [f"end {k}"]
        nursery.cancel_scope.cancel()
