"""``notify-email``: a plain-text and HTML mail (templates/notifiers/notice.txt and notice.html) to the
subscription's ``to``, through Django's SMTP backend with the server of ``GOFER_EMAIL_*``.

The SMTP server is the operator's: the install settings ``namespaces`` (who may subscribe) and ``recipients``
(address globs such as ``*@acme.com``) keep it from being a relay for anyone. Both default to everything in normal
mode and to nothing in sandbox mode; the recipients are checked when subscribing and before every attempt."""

from __future__ import annotations

import smtplib
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.template.loader import render_to_string

from notifiers import outbound
from notifiers.kinds.base import NAMESPACES, Context, NotifierKind, allowlist, check_patterns, matches
from notifiers.payload import duration_text, headline
from triggers.builtins.base import Param, settings_error

MAX_RECIPIENTS = 20
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def recipients(text: str) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()]


class EmailNotifier(NotifierKind):
    id = "notify-email"
    body = "Mails the notice (plain text and HTML) to `to`, comma-separated addresses, through GOFER_EMAIL_HOST."
    config_params = (
        NAMESPACES,
        Param(
            "recipients",
            False,
            "Comma-separated address globs notices may be mailed to (*@acme.com). Empty: any address, except in "
            "sandbox mode, where it is none.",
        ),
    )
    operator_credentials = True
    own_subscription_params = (Param("to", True, "Comma-separated e-mail addresses."),)

    def validate_own_config(self, settings: dict[str, str]) -> dict[str, str]:
        return check_patterns(settings, "recipients", "-_.+@")

    @staticmethod
    def refused(config: dict[str, str], addresses: list[str]) -> list[str]:
        """The addresses the install setting ``recipients`` does not allow."""
        globs = allowlist(config, "recipients")
        return [address for address in addresses if not matches(address, globs)]

    def permit(self, context: Context) -> None:
        super().permit(context)
        refused = self.refused(context.config, recipients(context.settings.get("to", "")))
        if refused:
            raise outbound.DeliveryError(
                f"not sent: {', '.join(refused)[:200]} not in {self.id}'s install setting recipients", retryable=False
            )

    def validate_own(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        addresses = recipients(settings["to"])
        if not addresses or len(addresses) > MAX_RECIPIENTS:
            raise settings_error("to", f"must name 1 to {MAX_RECIPIENTS} addresses, comma-separated")
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise settings_error("to", f"{address!r:.80} is not an e-mail address") from None
        settings["to"] = ",".join(addresses)
        return settings

    def validate_for_pipeline(self, settings: dict[str, str], config: dict[str, str], pipeline: Any) -> dict[str, str]:
        # After the namespace's own check (super), so that a namespace without the right hears that first.
        settings = super().validate_for_pipeline(settings, config, pipeline)
        refused = self.refused(config, recipients(settings["to"]))
        if refused:
            raise settings_error(
                "to",
                f"{', '.join(refused)[:200]} not in {self.id}'s install setting recipients; an admin lists them with "
                "POST /api/extensions?force=true",
            )
        return settings

    def send(self, context: Context) -> outbound.Sent:
        facts = {**context.facts, "headline": headline(context.facts), "duration": duration_text(context.facts)}
        connection = get_connection(
            SMTP_BACKEND,
            host=django_settings.GOFER_EMAIL_HOST,
            port=django_settings.GOFER_EMAIL_PORT,
            username=django_settings.GOFER_EMAIL_USER or None,
            password=django_settings.GOFER_EMAIL_PASSWORD or None,
            use_tls=django_settings.GOFER_EMAIL_USE_TLS,
            timeout=django_settings.GOFER_NOTIFIER_TIMEOUT_SECONDS,
        )
        mail = EmailMultiAlternatives(
            subject=f"[Gofer] {facts['headline']}"[:200],
            body=render_to_string("notifiers/notice.txt", facts),
            from_email=django_settings.GOFER_EMAIL_FROM,
            to=recipients(context.settings["to"]),
            connection=connection,
        )
        mail.attach_alternative(render_to_string("notifiers/notice.html", facts), "text/html")
        try:
            mail.send()
        except smtplib.SMTPRecipientsRefused as exc:
            raise outbound.DeliveryError(f"the SMTP server refused the recipients: {exc}", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise outbound.DeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from None
        return outbound.Sent(None, f"accepted by {django_settings.GOFER_EMAIL_HOST} for {len(mail.to)} recipient(s)")
