"""What hubs, clients and hubctl all need: key names, atomic writes, durations, config checks."""

__version__ = "0.1.0"
