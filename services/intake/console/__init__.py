"""The people's console, served by intake under ``/console/`` (and ``/track`` for the public):
server-rendered pages in Simplified Chinese over the same service layer as the API.

* :mod:`.web`: templates, the session cookie, CSRF, error pages;
* :mod:`.pages`: the routes;
* ``templates/`` (Jinja2) and ``static/`` (the console's own CSS and script: nothing is
  fetched from another site, so it works on a machine without internet).
"""

from __future__ import annotations

from services.intake.console.pages import build

__all__ = ["build"]
