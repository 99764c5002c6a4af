"""The event consumers' AMQP transport reads what the socket holds and cuts py-amqp's frames from
it (one `recv` per delivery instead of nine); frames, partial reads and timeouts behave as with
py-amqp's own transport."""

import struct

import pytest

from shared.nameko_ext import _BufferedAmqpConnection, _BufferedTcpTransport


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


class FakeSocket:
    """Hands out the scripted chunks one `recv` at a time (an exception is raised instead)."""

    def __init__(self, *chunks):
        self.chunks = list(chunks)
        self.asked = []

    def recv(self, n):
        self.asked.append(n)
        chunk = self.chunks.pop(0)
        if isinstance(chunk, Exception):
            raise chunk
        return chunk


def transport(sock: FakeSocket) -> _BufferedTcpTransport:
    t = _BufferedTcpTransport("127.0.0.1:5672")
    t._read_buffer = b""
    t._quick_recv = sock.recv
    return t


def test_a_whole_delivery_in_one_recv_gives_its_three_frames_without_asking_again():
    method, header, body = frame(1, 1, b"m" * 40), frame(2, 1, b"h" * 90), frame(3, 1, b"b" * 500)
    sock = FakeSocket(method + header + body)
    t = transport(sock)
    assert [t.read_frame() for _ in range(3)] == [
        (1, 1, b"m" * 40), (2, 1, b"h" * 90), (3, 1, b"b" * 500)]
    assert len(sock.asked) == 1
    assert sock.asked[0] >= _BufferedTcpTransport.READ_SIZE


def test_a_frame_split_over_several_recvs_is_put_together():
    data = frame(3, 2, bytes(range(256)) * 4)
    sock = FakeSocket(data[:3], data[3:100], data[100:])
    assert transport(sock).read_frame() == (3, 2, bytes(range(256)) * 4)


def test_a_frame_larger_than_the_read_size_is_read_whole():
    payload = b"x" * (_BufferedTcpTransport.READ_SIZE * 3)
    data = frame(3, 1, payload)
    sock = FakeSocket(data[:7], data[7:])
    assert transport(sock).read_frame() == (3, 1, payload)
    assert sock.asked[1] >= len(payload)  # one recv may take a payload above the read size


def test_a_timeout_mid_frame_keeps_what_was_read_for_the_next_attempt():
    data = frame(1, 1, b"payload")
    sock = FakeSocket(data[:9], TimeoutError("timed out"), data[9:])
    t = transport(sock)
    with pytest.raises(TimeoutError):
        t.read_frame()
    assert t.read_frame() == (1, 1, b"payload")


def test_the_connection_uses_it_for_plain_tcp_and_py_amqps_own_for_tls():
    conn = _BufferedAmqpConnection.__new__(_BufferedAmqpConnection)
    plain = conn.Transport("127.0.0.1:5672", 5, False, None, None, socket_settings=None)
    assert type(plain) is _BufferedTcpTransport
    tls = conn.Transport("127.0.0.1:5671", 5, {"cert_reqs": 0}, None, None, socket_settings=None)
    assert not isinstance(tls, _BufferedTcpTransport)
