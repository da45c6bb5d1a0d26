"""ASGI entry point: HTTP through Django, websockets (logs, events) through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gofer_site.settings")
# This is the server process: its PostgreSQL connections are pooled (gofer_site/settings.py, pooled()). Not left in
# the environment, so that no process started from here counts as the server.
os.environ["GOFER_SERVER_PROCESS"] = "1"
try:
    django_asgi_app = get_asgi_application()
finally:
    del os.environ["GOFER_SERVER_PROCESS"]

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - Django must be set up first
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from gofer_site.routing import websocket_urlpatterns  # noqa: E402
from kernel.api import daphne_streaming  # noqa: E402
from kernel.api.websockets import origin_validator, unknown_route  # noqa: E402

# Large uploads and downloads must not pass through daphne's unbounded buffers (kernel/api/daphne_streaming.py).
daphne_streaming.install()

# The admin's styles and the API docs' Redoc (drf-spectacular-sidecar) are this server's own static files, served
# from the installed apps under STATIC_URL: nothing is loaded from another origin.
http_app = ASGIStaticFilesHandler(django_asgi_app)

from gofer_site.listeners import external_port  # noqa: E402

# A path no route matches is a 4404 close, not the router's exception (kernel/api/websockets.py).
_websockets = origin_validator(URLRouter([*websocket_urlpatterns, unknown_route()]))


async def websockets(scope, receive, send):  # noqa: ANN001, ANN201 - the ASGI signature
    """Websockets, except on the external listener (GOFER_EXTERNAL_BIND), which serves webhooks only."""
    port = external_port()
    if port is not None and str((scope.get("server") or (None, None))[1]) == port:
        await send({"type": "websocket.close", "code": 4404})
        return None
    return await _websockets(scope, receive, send)


application = ProtocolTypeRouter({"http": http_app, "websocket": websockets})
