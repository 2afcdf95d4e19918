"""LangChain integration for Threadline: its retrieval service as a LangChain ``VectorStore``."""

from langchain_threadline.vectorstores import ThreadlineVectorStore

__all__ = ["ThreadlineVectorStore"]
