"""Fencing at the worker: every request's X-Orca-Term goes through a TermFence (task/wire.py);
a command (any method but GET/HEAD/OPTIONS) from a deposed leader is refused with 409, the
message naming both terms and X-Orca-Seen-Term carrying the newest."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request

from task import ValidationError
from task.wire import SEEN_TERM_HEADER, TERM_HEADER, StaleTerm, TermFence, parse_term

log = logging.getLogger(__name__)

READS = frozenset({"GET", "HEAD", "OPTIONS"})


def install_term_fence(app: Flask) -> TermFence:
    """Check the term of every request to `app` before its handler runs; return the fence."""
    fence = TermFence()

    @app.before_request
    def _check_term():
        try:
            fence.admit(parse_term(request.headers.get(TERM_HEADER)), request.method not in READS)
        except ValidationError as exc:
            return jsonify(error=str(exc)), 400
        except StaleTerm as exc:
            log.warning("%s %s refused: %s", request.method, request.path[:100], exc)
            return jsonify(error=str(exc)), 409, {SEEN_TERM_HEADER: str(exc.seen)}
        return None

    return fence
