"""A TCP proxy on loopback in front of a real server, to make that server unreachable for a while.

An app pointed at ``proxy.port`` reaches the server through it. ``cut()``
closes every connection through it and turns new ones away (closed as soon as
they are accepted, as a server that is going down does); ``restore()`` lets
connections through again. The server itself is never touched.
"""
from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.reachable = True
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> "TcpProxy":
        self._thread.start()
        return self

    def cut(self) -> None:
        """Close every connection through the proxy and refuse new ones until ``restore``."""
        with self._lock:
            self.reachable = False
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _close(sock)

    def restore(self) -> None:
        with self._lock:
            self.reachable = True

    def stop(self) -> None:
        self._running = False
        self.cut()
        _close(self.listener)

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                reachable = self.reachable
            if not reachable:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
