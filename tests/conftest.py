import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / TUN)")
    for item in items:
        if "netns" in item.keywords or "interop" in item.keywords:
            item.add_marker(skip)
