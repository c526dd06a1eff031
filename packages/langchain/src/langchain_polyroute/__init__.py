"""LangChain integration for polyroute: ``ChatPolyroute``, a chat model with multi-provider routing in-process."""

from langchain_polyroute.chat_models import ChatPolyroute

__version__ = "0.1.0"

__all__ = ["ChatPolyroute", "__version__"]
