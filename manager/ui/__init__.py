"""The dashboard: server-rendered pages at /ui over the manager, updated live from GET /events.

No JavaScript build step and no library: Jinja templates, one stylesheet and one small script
(static/orca.js) that keeps one EventSource per tab (closed when the page is hidden or left)
and follows a task's output. Pages read through the manager's paged queries, never a copy of
every task. When the manager has a token, a browser logs in once (manager/ui/auth.py) and keeps
a session cookie; the token never appears in a URL.
"""
from manager.ui.pages import create_ui_blueprint

__all__ = ["create_ui_blueprint"]
