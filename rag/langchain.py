"""The index as a LangChain retriever, for pipelines built with LangChain.

>>> from rag import RAG
>>> from rag.langchain import ArticleRetriever
>>> docs = ArticleRetriever(rag=RAG("index"), k=5).invoke("In which city did Ishaq Dar speak?")

Each ``Document`` is a passage, ``page_content`` its exact text; ``metadata`` carries
``article_id``, ``chunk_id``, ``title``, ``start``, ``end`` (offsets into the article), ``score``,
``source`` (the agency), ``date`` (ISO) and ``group`` (its story group). ``since``, ``until`` and
``source`` restrict it as ``RAG.search`` does (``ArticleRetriever(rag=r, source="Fars")``).
Imported only by callers that want it: the app and the CLI never load LangChain.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .api import RAG


class ArticleRetriever(BaseRetriever):
    rag: Any
    k: int = 5
    since: Any = None
    until: Any = None
    source: Any = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        rag: RAG = self.rag
        return [Document(page_content=h.text,
                         metadata={"article_id": h.article_id, "chunk_id": h.chunk_id, "title": h.title,
                                   "start": h.start, "end": h.end, "score": h.score, "rank": h.rank,
                                   "source": h.source, "date": h.date, "group": h.group})
                for h in rag.search(query, k=self.k, since=self.since, until=self.until, source=self.source).hits]
