"""Fixtures of the model-plane tests: real llama.cpp servers (see llm_server.py)."""

from llm_server import llm_embedding_server, llm_server

__all__ = ["llm_embedding_server", "llm_server"]
