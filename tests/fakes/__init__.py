"""Fakes of the outside services DreamForge talks to, speaking their real HTTP protocols and failing on command."""
