from django.apps import AppConfig


class NotifiersConfig(AppConfig):
    """What Gofer tells the outside world about runs: the notifier kinds (built-in extensions of kind
    ``notifier``: notify-webhook, notify-slack, notify-github, notify-email), the rules of their subscriptions,
    notices and their delivery (docs/notifiers.md)."""

    name = "notifiers"
    verbose_name = "Notifiers: notices and deliveries"

    def ready(self) -> None:
        # lazy: these modules import models, which exist only once the app registry is ready.
        from notifiers import receivers, services
        from notifiers.kinds import KINDS
        from runs.signals import run_admitted, run_finished, task_execution_finished
        from triggers import ticker
        from triggers.builtins import register

        for kind in KINDS.values():
            register(kind)
        run_finished.connect(receivers.on_run_finished, dispatch_uid="notifiers.run_finished")
        task_execution_finished.connect(
            receivers.on_task_execution_finished, dispatch_uid="notifiers.task_execution_finished"
        )
        run_admitted.connect(receivers.on_run_admitted, dispatch_uid="notifiers.run_admitted")
        # Duration rules, lost decisions and lost deliveries: swept by the ticker's holder on the workers.
        ticker.register_periodic(services.sweep)
