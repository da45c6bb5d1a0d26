from django.urls import path

from access.api import views

urlpatterns = [
    path("tokens", views.TokenListView.as_view(), name="tokens"),
    path("tokens/bootstrap", views.BootstrapTokenView.as_view(), name="token-bootstrap"),
    path("tokens/whoami", views.WhoAmIView.as_view(), name="token-whoami"),
    path("tokens/<str:id>", views.TokenDetailView.as_view(), name="token"),
    path("roles", views.RoleListView.as_view(), name="roles"),
    path("roles/<str:role_id>", views.RoleDetailView.as_view(), name="role"),
    path("system", views.SystemView.as_view(), name="system"),
    path("system/metadata", views.SystemMetadataView.as_view(), name="system-metadata"),
]
