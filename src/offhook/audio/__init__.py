"""offhook.audio."""
