"""Infrastructure shared by every DreamForge service: settings, logs, errors, gRPC and Redis plumbing.

Nothing here knows about stories or jobs; each service keeps its own domain code.
"""
