"""Which requests a follower forwards to the leader (manager/forward.py)."""
from __future__ import annotations

import json

import pytest

from manager.forward import is_write


def _rpc(*methods: str) -> bytes:
    calls = [{"jsonrpc": "2.0", "method": m, "id": i} for i, m in enumerate(methods)]
    return json.dumps(calls[0] if len(calls) == 1 else calls).encode()


@pytest.mark.parametrize("method, path, body, expected", [
    ("GET", "/tasks", b"", False),
    ("HEAD", "/tasks", b"", False),
    ("POST", "/tasks", b"{}", True),
    ("DELETE", "/tasks/x", b"", True),
    ("PUT", "/services/web", b"{}", True),
    ("POST", "/jrpc", _rpc("ContainerService.Status"), False),
    ("POST", "/jrpc", _rpc("ContainerService.Create"), True),
    ("POST", "/jrpc", _rpc("ContainerService.Status", "ContainerService.Create"), True),
    ("POST", "/jrpc", _rpc("ContainerService.Status", "ContainerService.Status"), False),
    ("POST", "/jrpc", b"not json", False),  # answered here with the protocol's parse error
    ("POST", "/jrpc", b"[1, 2]", True),  # not calls: the leader answers as it would
])
def test_is_write(method, path, body, expected):
    assert is_write(method, path, lambda: body) is expected
