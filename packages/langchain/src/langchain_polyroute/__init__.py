"""LangChain integration for polyroute: ``ChatPolyroute`` (chat) and ``PolyrouteEmbeddings`` (embeddings), with
multi-provider routing in-process.
"""

from langchain_polyroute.chat_models import ChatPolyroute
from langchain_polyroute.embeddings import PolyrouteEmbeddings

__version__ = "0.1.0"

__all__ = ["ChatPolyroute", "PolyrouteEmbeddings", "__version__"]
