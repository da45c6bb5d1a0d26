"""Gofer's v0 REST and websocket protocol: the base view and consumer with the access gate, the error shape and its
statuses, pagination, request ids and the version header, and flow control inside daphne."""
