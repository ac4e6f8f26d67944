"""Image pulls with a deadline: part of the Docker adapter (see worker/runtime.py).

The SDK's pull posts with no timeout, and an engine pulling from a registry that never
answers sends nothing back, not even headers. So each pull runs in a daemon thread (a
worker that shuts down never waits for one), at most `threads` at once, with a read timeout
on the engine's socket; the caller waits at most `timeout` seconds (queueing included) and
then fails the start with an error naming the image. A pull the caller gave up on ends by
itself when the engine's socket times out.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Callable

import docker
from docker import auth
from docker.errors import DockerException
from requests.exceptions import RequestException, Timeout

from worker.containers import Closing, RuntimeFailure, explain

log = logging.getLogger(__name__)

POLL = 0.25  # seconds between looks at the pull and at a shutdown


class ImagePuller:
    """Pulls images through an engine's API, bounded in number and in time."""

    def __init__(self, api: Callable[[], docker.APIClient], timeout: float, threads: int) -> None:
        self._api = api
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(threads)
        self._closing = threading.Event()

    def pull(self, image: str, repository: str, reference: str) -> None:
        """Pull `repository` at `reference` (a tag or a digest) for `image`.

        Raises:
            RuntimeFailure: naming the image: the engine could not get it, or not within the
                timeout.
            Closing: close() was called while waiting.
        """
        done, abandoned = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            with self._slots:
                if abandoned.is_set():
                    return
                try:
                    self._pull_now(repository, reference)
                except (RuntimeFailure, DockerException, RequestException, ValueError) as exc:
                    failure.append(exc)
                finally:
                    done.set()
        threading.Thread(target=run, name=f"pull-{repository[-40:]}", daemon=True).start()
        if not self._wait(done):
            abandoned.set()
            if self._closing.is_set():
                raise Closing(f"image {image!r}: pull abandoned, the worker is shutting down")
            failure.append(Timeout())
        if failure and isinstance(failure[0], Timeout):  # ours, or the engine socket's read timeout
            raise RuntimeFailure(f"image {image!r} could not be pulled within {self._timeout:g} s "
                                 f"(ORCA_PULL_TIMEOUT)")
        if failure:
            raise RuntimeFailure(f"image {image!r} is not available: {explain(failure[0])}") from None  # type: ignore[arg-type]

    def _wait(self, done: threading.Event) -> bool:
        """Wait for `done` up to the timeout; False when it did not come (or closing)."""
        waited = 0.0
        while waited < self._timeout and not self._closing.is_set():
            step = min(POLL, self._timeout - waited)
            if done.wait(step):
                return True
            waited += step
        return done.is_set()

    def _pull_now(self, repository: str, reference: str) -> None:
        """POST /images/create and read the engine's progress to the end; raise on its error."""
        api = self._api()
        headers = {}
        header = auth.get_config_header(api, auth.resolve_repository_name(repository)[0])
        if header:
            headers["X-Registry-Auth"] = header
        response = api.post(f"{api.base_url}/images/create", params={"fromImage": repository, "tag": reference},
                            headers=headers, stream=True, timeout=self._timeout)
        try:
            if response.status_code >= 400:
                raise RuntimeFailure(_message(response.content) or f"HTTP {response.status_code}")
            for line in response.iter_lines():
                error = _message(line) if line else None
                if error:
                    raise RuntimeFailure(error)
        finally:
            response.close()

    def close(self) -> None:
        """Make every waiting pull give up at once (with Closing)."""
        self._closing.set()


def _message(raw: bytes) -> str | None:
    """The error (or message of an error answer) in one JSON line of the engine's output."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:300] or None
    if not isinstance(body, dict):
        return None
    return str(body.get("error") or body.get("message") or "")[:300] or None
