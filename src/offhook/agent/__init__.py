"""offhook.agent."""
