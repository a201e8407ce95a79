"""Text and image engines: `openai` (any OpenAI-compatible server) and `offline` (built in, no network)."""
