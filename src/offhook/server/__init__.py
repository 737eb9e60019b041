"""offhook.server."""
