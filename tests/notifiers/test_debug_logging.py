"""GOFER_LOG_LEVEL=DEBUG does not log a Slack webhook's secret: urllib3 logs each request's path at DEBUG, and the
path of an incoming-webhook URL is its credential, so gofer_site/settings.py pins the urllib3 and requests loggers
at WARNING whatever the level. Checked in a fresh process, with the settings loaded as a server loads them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.support.processes import REPO

SECRET = "T0DEBUG/B0DEBUG/leakedWebhookSecret123"

SCRIPT = textwrap.dedent(
    f"""
    import http.server, logging, threading
    import django
    django.setup()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from notifiers import outbound
    url = f"http://127.0.0.1:{{server.server_port}}/services/{SECRET}"
    policy = outbound.policy_for({{"allowed_hosts": "127.0.0.1"}}, "notify-slack")
    response = outbound.request("POST", url, policy=policy, json={{"text": "hi"}})
    logging.getLogger("gofer.test").debug("root logs at DEBUG; answer %s", response.status_code)
    print("levels", logging.getLogger("urllib3").getEffectiveLevel(), logging.getLogger("requests").getEffectiveLevel())
    """
)


def test_debug_logging_does_not_log_a_slack_webhooks_path(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gofer_site.settings",
        "GOFER_LOG_LEVEL": "DEBUG",
        "GOFER_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "root logs at DEBUG; answer 200" in done.stderr  # the level is DEBUG for everything else
    assert f"levels {30} {30}" in done.stdout
    assert SECRET not in done.stderr and "leakedWebhookSecret" not in done.stdout + done.stderr
