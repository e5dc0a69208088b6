"""The voice channel: a test call, "press 1 to confirm" (provider ``voice.twilio``)."""
