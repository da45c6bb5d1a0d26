"""ASGI entry point: HTTP through Django, websockets (logs, events) through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gofer_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - Django must be set up first

from gofer_site.routing import websocket_urlpatterns  # noqa: E402
from kernel.api import daphne_streaming  # noqa: E402
from kernel.api.websockets import origin_validator  # noqa: E402

# Large uploads and downloads must not pass through daphne's unbounded buffers (kernel/api/daphne_streaming.py).
daphne_streaming.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": origin_validator(URLRouter(websocket_urlpatterns)),
    }
)
