"""A trivial JSON endpoint on Orca's server stack (Flask app from common.http on waitress,
same thread count): the baseline for bench/accept.py.  python bench/trivial_server.py PORT"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from flask import jsonify

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.config import Config  # noqa: E402
from common.http import Server, create_json_app, json_body  # noqa: E402


def main() -> None:
    app = create_json_app("trivial")

    @app.post("/tasks")
    def echo():
        body = json_body()
        return jsonify({"received": len(body)}), 201

    server = Server(app, "127.0.0.1", int(sys.argv[1]), threads=Config().http_threads, name="trivial")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.close()


if __name__ == "__main__":
    main()
