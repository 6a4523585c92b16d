"""A moto server in this test process, served on loopback and inside a network namespace the test made.

    aws = MotoEndpoint()
    url = aws.start_local()                        # http://127.0.0.1:<port>: the controller's code, in the test
    aws.start_inside("lkt-...-net", "192.0.2.10")  # http://192.0.2.10:80 inside that namespace: the gateways
    ...
    aws.stop()

Both listeners serve one moto backend (moto keeps its state in this process), so what the test writes through the
first the agents read through the second. The inside listener's socket is made by a thread that entered the
namespace with setns(2); every other thread of the process stays where it was. No traffic leaves the namespaces
the test made or this machine's loopback.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _enter(netns: str) -> None:
    """Move the calling thread (only it) into the named network namespace."""
    fd = os.open(Path("/run/netns") / netns, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)


class MotoEndpoint:
    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.app = DomainDispatcherApplication(create_backend_app)
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []
        self.local_url = ""

    def _make(self, host: str, port: int) -> Any:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        return make_server(host, port, self.app, threaded=True, request_handler=MotoRequestHandler)

    def _serve(self, name: str, host: str, port: int, netns: str | None) -> Any:
        ready = threading.Event()
        box: dict[str, Any] = {}

        def serve() -> None:
            try:
                if netns:
                    _enter(netns)  # this thread only, for good: it exits when the server stops
                box["server"] = self._make(host, port)
            except OSError as exc:
                box["error"] = exc
                return
            finally:
                ready.set()
            box["server"].serve_forever()

        thread = threading.Thread(target=serve, name=name, daemon=True)
        thread.start()
        if not ready.wait(10) or "error" in box:
            raise RuntimeError(f"moto cannot listen on {host}:{port} ({netns or 'here'}): {box.get('error')}")
        self._servers.append(box["server"])
        self._threads.append(thread)
        return box["server"]

    def start_local(self) -> str:
        """Listen on 127.0.0.1 (a free port); returns the endpoint URL."""
        server = self._serve("moto-local", "127.0.0.1", 0, None)
        self.local_url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.local_url

    def start_inside(self, netns: str, address: str, port: int = 80) -> str:
        """Listen on ``address:port`` inside ``netns``; returns the URL the namespace's processes use."""
        self._serve(f"moto-{netns}", address, port, netns)
        return f"http://{address}:{port}"

    def reset(self) -> None:
        """Forget every resource (moto's state is this process's: leave none to the next test)."""
        request = urllib.request.Request(f"{self.local_url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).read()  # noqa: S310 (loopback http)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)
        self._servers.clear()
        self._threads.clear()
