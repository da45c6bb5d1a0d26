"""Hooks for what lives outside the pipelines tables and must go when a namespace or pipeline does.

Sent inside the deleting transaction, before the rows cascade away, so receivers can still read what they must
release: the runs app stops containers, the secret and object stores delete blobs and run tokens. These are the only
signals Gofer uses for flow; they keep ``pipelines`` from importing the apps that build on it.
"""

from django.dispatch import Signal

# kwargs: namespace
namespace_deleting = Signal()
# kwargs: pipeline
pipeline_deleting = Signal()
