"""AutoGen integration for polyroute."""
