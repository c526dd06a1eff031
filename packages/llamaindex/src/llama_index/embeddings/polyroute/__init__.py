"""LlamaIndex integration for polyroute: ``PolyrouteEmbedding``, an embedding model routed in-process."""

from llama_index.embeddings.polyroute.base import PolyrouteEmbedding

__all__ = ["PolyrouteEmbedding"]
