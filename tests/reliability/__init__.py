"""Reliability suite: every operator and sensor against the emulator's fault plans, bad input."""
