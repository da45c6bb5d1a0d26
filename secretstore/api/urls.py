"""secretstore API routes (Gofer v0 paths)."""

urlpatterns: list = []
