"""The dashboard's login: the token asked for once, a session cookie kept for the browser session.

The cookie (common.http.session_value) is HttpOnly and SameSite=Strict, holds an HMAC and
the time of the login, never the token, and lasts until the browser closes (or
SESSION_HOURS). It admits the dashboard's pages and the API's reads (the event stream, log
follows); the dashboard's actions are POSTs that must also come from its own pages.
"""
from __future__ import annotations

import hmac
import time

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from common.http import SESSION_COOKIE, Unauthorized, _digest, bearer_valid, session_valid, session_value
from task.errors import Forbidden

OPEN_ENDPOINTS = frozenset({"ui.login", "ui.static", "ui.favicon", "ui.root"})


def token_digest() -> bytes | None:
    """The digest of the app's token (None: no token, the dashboard is open)."""
    return current_app.config.get("ORCA_TOKEN_DIGEST")


def check_access() -> Response | None:
    """Before every dashboard request: a browser without a session goes to the login page;
    an action must come from this site (SameSite cookie, and Origin / Sec-Fetch-Site)."""
    expected = token_digest()
    if request.method == "POST" and request.endpoint != "ui.login":
        same_site()
    if expected is None or request.endpoint in OPEN_ENDPOINTS:
        return None
    if session_valid(expected) or bearer_valid(expected):
        return None
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("ui.login", next=request.path), 303)
    raise Unauthorized("missing or invalid session: log in at /ui/login")


def same_site() -> None:
    """Refuse a POST another site's page sent (403)."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site not in (None, "same-origin", "none") or (origin and origin.rstrip("/") != request.host_url.rstrip("/")):
        raise Forbidden("the dashboard's actions only come from its own pages")


def add_login_routes(ui: Blueprint) -> None:
    """GET/POST /ui/login and POST /ui/logout."""

    @ui.route("/ui/login", methods=["GET", "POST"])
    def login():
        expected = token_digest()
        target = safe_next(request.values.get("next", ""))
        if expected is None:
            return render_template("login.html", open=True, next=target)
        if request.method == "GET":
            return render_template("login.html", open=False, next=target, error=None)
        offered = request.form.get("token", "").strip()
        if not hmac.compare_digest(_digest(offered), expected):
            return render_template("login.html", open=False, next=target, error="That is not the token."), 401
        response = redirect(target, 303)
        response.set_cookie(SESSION_COOKIE, session_value(expected, int(time.time())), httponly=True,
                            samesite="Strict", secure=request.is_secure, path="/")
        return response

    @ui.post("/ui/logout")
    def logout():
        response = redirect(url_for("ui.login"), 303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
        return response


def safe_next(target: str) -> str:
    """Where to go after the login: a dashboard path only (never another site)."""
    if target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"
