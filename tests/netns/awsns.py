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

import urllib.request

from linker.sandbox.endpoint import Listeners, moto_app


class MotoEndpoint:
    def __init__(self) -> None:
        self.listeners = Listeners(moto_app())
        self.local_url = ""

    def start_local(self) -> str:
        """Listen on 127.0.0.1 (a free port); returns the endpoint URL."""
        self.local_url = f"http://127.0.0.1:{self.listeners.start_local()}"
        return self.local_url

    def start_inside(self, netns: str, address: str, port: int = 80) -> str:
        """Listen on ``address:port`` inside ``netns``; returns the URL the namespace's processes use."""
        self.listeners.start_inside(netns, address, port)
        return f"http://{address}:{port}"

    def reset(self) -> None:
        """Forget every resource (moto's state is this process's: leave none to the next test)."""
        request = urllib.request.Request(f"{self.local_url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).read()  # noqa: S310 (loopback http)

    def stop(self) -> None:
        self.listeners.stop()
