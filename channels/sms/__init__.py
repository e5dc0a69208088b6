"""The SMS channel: a message with a reply code (provider ``sms.twilio``)."""
