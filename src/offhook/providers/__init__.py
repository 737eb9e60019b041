"""offhook.providers."""
