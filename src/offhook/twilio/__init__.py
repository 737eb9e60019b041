"""offhook.twilio."""
