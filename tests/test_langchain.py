"""The LangChain retriever face returns the same passages as the Python API, as Documents whose
offsets slice the stored article (on the fake parts: what is checked is the face, not the model)."""

from rag import RAG
from rag.langchain import ArticleRetriever


def test_langchain_retriever_returns_passages_with_offsets(fake_seed_index):
    rag = RAG(fake_seed_index, reader=False)
    docs = ArticleRetriever(rag=rag, k=3).invoke("اسحاق دار در کدام شهر سخنرانی کرد؟")
    hits = rag.search("اسحاق دار در کدام شهر سخنرانی کرد؟", k=3).hits
    assert [d.metadata["chunk_id"] for d in docs] == [h.chunk_id for h in hits]
    for d in docs:
        text = rag.article(d.metadata["article_id"]).text
        assert text[d.metadata["start"]:d.metadata["end"]] == d.page_content
    assert any("کوالالامپور" in d.page_content for d in docs)


def test_langchain_retriever_filters_and_carries_news_metadata(fake_seed_index):
    rag = RAG(fake_seed_index, reader=False)
    docs = ArticleRetriever(rag=rag, k=3, source="خبرگزاری معمار", since="1404-04-01").invoke("اسحاق دار")
    assert docs and all(d.metadata["source"] == "Memar" and d.metadata["date"] == "2025-07-11" for d in docs)
    assert ArticleRetriever(rag=rag, k=3, source="Fars").invoke("اسحاق دار") == []
