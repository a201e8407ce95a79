"""DreamForge's speed and memory targets, measured on real services (`make bench`)."""
