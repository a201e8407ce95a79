"""The storage service: stories as groups of content-addressed files, their manifests and the index."""
