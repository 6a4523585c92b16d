import os

import pytest

# Tests that use the machine itself (namespaces, TUN devices, the sandbox's fixed paths, wheels built from the
# checkout, the real WireGuard peers) run one at a time, in one pytest-xdist worker; the rest (unit, pair, control,
# fuzz) spread over the workers beside them (`pytest -n 2 --dist loadgroup`, as .ci/run does). terraform's tests
# share a provider directory: they run one at a time too.
MACHINE = ("netns", "interop")
SERIAL_DIRS = {"tests/package/": "machine", "tests/bench/": "machine", "tests/terraform/": "terraform"}


def _group(item) -> str | None:
    if any(m in item.keywords for m in MACHINE):
        return "machine"
    return next((g for d, g in SERIAL_DIRS.items() if item.nodeid.startswith(d)), None)


def pytest_collection_modifyitems(config, items):
    for item in items:
        group = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / TUN)")
    for item in items:
        if "netns" in item.keywords or "interop" in item.keywords:
            item.add_marker(skip)
