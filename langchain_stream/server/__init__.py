"""The OpenAI-compatible HTTP API over the router (``stream serve``), and LangServe routes.

Needs the ``[server]`` extra (FastAPI, uvicorn, limits).
"""

from langchain_stream.server.app import create_app
from langchain_stream.server.auth import KeyStore, RateLimiter, hash_key

__all__ = ["KeyStore", "RateLimiter", "create_app", "hash_key"]
