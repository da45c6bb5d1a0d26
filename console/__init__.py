"""The operators' console (Django admin): branding and the mixins every app's model admins share."""
