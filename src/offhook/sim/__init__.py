"""offhook.sim."""
