"""Cited-quote question answering over Persian and English news articles."""

from .answer import Answer, Citation
from .api import RAG, IngestReport, QuestionError
from .articles import Article
from .backends import StoreError

__all__ = ["RAG", "Answer", "Citation", "Article", "IngestReport", "QuestionError", "StoreError"]
