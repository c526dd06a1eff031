"""LlamaIndex integration for polyroute: ``Polyroute``, a function-calling LLM routed in-process."""

from llama_index.llms.polyroute.base import Polyroute

__all__ = ["Polyroute"]
