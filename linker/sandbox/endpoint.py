"""The sandbox's AWS: one moto backend in this process, served by two listeners.

- 127.0.0.1:<free port> for the CLI (``--endpoint-url``), on the machine's loopback;
- 192.0.2.10:80 inside the sandbox's internet namespace, for the instances (their ``AWS_ENDPOINT_URL``): a gateway
  reaches it through its VPC router and internet gateway, as a real one reaches the regional endpoints.

moto is told to hand out addresses as AWS does for this sandbox: Elastic IPs from TEST-NET-3 (never a real public
address) and instance addresses from a subnet's usable range, skipping AWS's reserved ones and addresses in use.
A thin WSGI layer reports each mutating EC2 call, so the supervisor reconciles at once instead of polling hard,
and refuses every request that does not carry the sandbox's access key id: the loopback listener is open to any
local user, and what the API holds is run as root (an instance's user-data), so only root, who can read the key
in the sandbox's root-only state, may use it. (moto does not check signatures; the key id works as a token.)
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from linker.errors import SandboxError
from linker.sandbox import addressing, netns

log = logging.getLogger("linker.sandbox")
READ_ACTIONS = ("Describe", "Get", "List", "Head")
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_DENIED = (b"<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>not the sandbox's access key: use the "
           b"credentials of `linker ... --sandbox` (root)</Message></Error></ErrorResponse>")


class AddressBook:
    """Hands out public (TEST-NET-3) and private addresses; thread-safe (moto serves requests on many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_use: set[str] = set()
        self._cursors: dict[str, int] = {}

    def observe(self, in_use: Iterable[str]) -> None:
        """What the cloud holds now (the supervisor reads it each round); handed-out addresses are kept too."""
        with self._lock:
            self._in_use |= set(in_use)

    def forget(self, addresses: Iterable[str]) -> None:
        with self._lock:
            self._in_use -= set(addresses)

    def _take(self, pool_name: str, candidates: tuple[str, ...]) -> str | None:
        with self._lock:
            found = addressing.next_address(candidates, self._in_use, self._cursors.get(pool_name, 0))
            if found is None:
                return None
            address, self._cursors[pool_name] = found
            self._in_use.add(address)
            return address

    def public(self) -> str:
        address = self._take("public", addressing.PUBLIC_POOL)
        if address is None:
            raise SandboxError("the sandbox ran out of public addresses (TEST-NET-3)",
                               fix="release Elastic IPs, or remove the sandbox with `linker down --sandbox`")
        return address

    def private(self, subnet: str) -> str:
        address = self._take(subnet, addressing.subnet_hosts(subnet))
        if address is None:
            raise SandboxError(f"subnet {subnet} has no free address left")
        return address


def install_allocators(book: AddressBook) -> Callable[[], None]:
    """Make moto (in this process) allocate from ``book``; returns what undoes it. Refuses, rather than hand out a
    real public address, if moto's allocation functions are not where this expects them."""
    try:
        import moto.ec2.models.elastic_ip_addresses as eips
        import moto.ec2.models.elastic_network_interfaces as enis
    except ImportError as exc:
        raise SandboxError(f"the sandbox needs moto's EC2 models: {exc}",
                           fix="install the sandbox's dependencies: bash scripts/setup") from None
    for module, name in ((eips, "random_ip"), (enis, "random_public_ip"), (enis, "random_private_ip")):
        if not callable(getattr(module, name, None)):
            raise SandboxError(f"this moto version has no {module.__name__}.{name}: the sandbox cannot make it "
                               "hand out TEST-NET addresses", fix="install moto 5.x: bash scripts/setup")
    original_private = enis.random_private_ip

    def private(cidr: str | None = None, ipv6: bool = False) -> str:
        if cidr and not ipv6:
            return book.private(cidr)
        return str(original_private(cidr, ipv6))

    saved = (eips.random_ip, enis.random_public_ip, enis.random_private_ip)
    eips.random_ip = book.public  # type: ignore[attr-defined]
    enis.random_public_ip = book.public  # type: ignore[attr-defined]
    enis.random_private_ip = private  # type: ignore[attr-defined]

    def undo() -> None:
        eips.random_ip, enis.random_public_ip, enis.random_private_ip = saved  # type: ignore[attr-defined]
    return undo


def credential_scope(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """(access key id, region, service) of a SigV4 request: its Authorization header or presigned query."""
    found = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if found is None:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        found = _SCOPE.search("Credential=" + query.get("X-Amz-Credential", [""])[0])
    return (found.group(1), found.group(2), found.group(3)) if found else None


class ChangeWatcher:
    """WSGI middleware: refuses requests without ``access_key``; calls ``on_change(region, action)`` after each
    mutating EC2 call, and ``on_region`` for every region an EC2 call names (the regions worth watching)."""

    def __init__(self, app: Any, access_key: str, on_change: Callable[[str, str], None],
                 on_region: Callable[[str], None]) -> None:
        self.app, self.access_key, self.on_change, self.on_region = app, access_key, on_change, on_region

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        scope = credential_scope(environ)
        if scope is None or scope[0] != self.access_key:
            start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(_DENIED)))])
            return [_DENIED]
        _, region, service = scope
        action = ""
        if service == "ec2" and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(body)
            action = parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
        if service == "ec2" and region:
            self.on_region(region)
        response = self.app(environ, start_response)  # moto has handled the call once this returns
        if action and not action.startswith(READ_ACTIONS):
            self.on_change(region, action)
        return response


class Listeners:
    """One WSGI app (a moto backend) served on loopback and at addresses inside network namespaces.

    Each listener's socket is made by a thread that entered its namespace (setns, that thread only), so the
    process's other threads stay where they are and one in-process backend answers everywhere."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []

    def _make(self, host: str, port: int) -> Any:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server
        return make_server(host, port, self.app, threaded=True, request_handler=MotoRequestHandler)

    def start_local(self) -> int:
        """Listen on 127.0.0.1 (a free port); returns the port."""
        server = self._make("127.0.0.1", 0)
        self._servers.append(server)
        thread = threading.Thread(target=server.serve_forever, name="aws-local", daemon=True)
        thread.start()
        self._threads.append(thread)
        return int(server.server_address[1])

    def start_inside(self, namespace: str, address: str, port: int) -> None:
        """Listen on ``address:port`` inside ``namespace``: the socket is made by a thread that entered it."""
        ready = threading.Event()
        box: dict[str, Any] = {}

        def serve() -> None:
            try:
                box["server"] = self._make(address, port)
            except OSError as exc:
                box["error"] = exc
                return
            finally:
                ready.set()
            box["server"].serve_forever()

        self._threads.append(netns.thread_in_netns(namespace, serve, "aws-sandbox"))
        if not ready.wait(10) or "error" in box:
            raise SandboxError(f"the AWS endpoint cannot listen on {address}:{port} in {namespace}: "
                               f"{box.get('error', 'timed out')}")
        self._servers.append(box["server"])

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)
        self._servers.clear()
        self._threads.clear()


def moto_app() -> Any:
    """moto's server application (every service, its state in this process)."""
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # gateways attach an AWS managed policy
    try:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    except ImportError as exc:
        raise SandboxError(f"the sandbox needs moto's server: {exc}",
                           fix="install the sandbox's dependencies: bash scripts/setup") from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return DomainDispatcherApplication(create_backend_app)


class Endpoint(Listeners):
    """The embedded AWS endpoint: ``start_local`` then ``start_inside``; ``stop`` closes both listeners and undoes
    the address allocators."""

    def __init__(self, book: AddressBook, access_key: str, on_change: Callable[[str, str], None],
                 on_region: Callable[[str], None]) -> None:
        app = ChangeWatcher(moto_app(), access_key, on_change, on_region)
        self._undo = install_allocators(book)
        super().__init__(app)

    def stop(self) -> None:
        super().stop()
        self._undo()
