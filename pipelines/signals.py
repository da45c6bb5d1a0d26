"""Hooks for the apps built on pipelines: what must go, or must not go, when a namespace, pipeline or config does.

Sent inside the deleting transaction, before the rows cascade away, so receivers can still read what they must
release: the runs app stops containers, the secret and object stores delete blobs and run tokens. ``config_deleting``
lets a receiver refuse by raising a domain error (the runs app refuses while a run still executes the version).
They keep ``pipelines`` from importing the apps that build on it (docs/architecture.md, "Layers").
"""

from django.dispatch import Signal

# kwargs: namespace
namespace_deleting = Signal()
# kwargs: pipeline
pipeline_deleting = Signal()
# kwargs: config. A receiver may raise a GoferError to refuse the deletion; nothing is deleted then.
config_deleting = Signal()
