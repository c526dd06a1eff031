"""LlamaIndex integration for polyroute."""
