"""A stand-in for an external payment provider.

It runs as its own process with its own database and shares nothing with
Concord: the project reaches it only over HTTP (DESIGN §1).
"""
