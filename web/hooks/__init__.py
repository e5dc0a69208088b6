"""Provider webhooks (``/hooks/<provider>/...``): verified, bounded, applied off the event loop."""
