"""LangChain integration for polyroute."""
