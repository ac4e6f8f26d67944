"""HTTP health probes of task containers (the book's HealthCheck): the worker's only outbound HTTP."""
from __future__ import annotations

import requests

_session = requests.Session()
_session.trust_env = False  # probes go straight to the container's published port


def probe(url: str, timeout: float = 2.0) -> str | None:
    """GET `url`; return None when it answers 2xx or 3xx, else the reason it is unhealthy."""
    try:
        response = _session.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return f"health check {url} failed: {type(exc).__name__}"
    if response.status_code >= 400:
        return f"health check {url} answered {response.status_code}"
    return None
