"""What an index holds, side by side, for the consistency check (``rag.check``): the records, the
passages they own, the ids the dense side can find, the passages the lexical side can find, and the
story keys. Each backend makes one (``embedded_check``, ``milvus_check``) and repairs from its records
what ``rag.check`` found wrong."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Inventory:
    # article id -> (fingerprint of the recorded version, how many versions the records hold)
    articles: dict[str, tuple[str, int]]
    # (passage id, article id, seq, of the recorded version)
    passages: list[tuple[int, str, int, bool]]
    vectors: set[int]               # passage ids the dense search can return
    lexicon: set[int]               # passage ids the lexical side finds (by their own terms)
    # article id -> its passages as the records say (None: the backend records no count apart)
    chunks: dict[str, int] | None = None
    story_keys: dict[str, int] = field(default_factory=dict)        # article id -> its key rows
    story_groups: dict[str, str | None] = field(default_factory=dict)  # article id -> group (None: no head)
    lexicon_problems: list[str] = field(default_factory=list)       # statistics that disagree (whole index)
