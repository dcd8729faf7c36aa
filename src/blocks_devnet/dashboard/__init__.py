"""The local network's web dashboard (docs/dashboard.md): served on the network's own port.

Pages are rendered on the server (every value escaped in :mod:`.html`), kept live by
server-sent events, and read everything through the same task-service and registry
functions the API uses, as the signed-in user.
"""
