"""The hub daemon's parts: replica-set view, SSH service, master watch, collector, peer sync."""
