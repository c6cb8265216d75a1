"""Start the Gradio app: `python app.py [--host H] [--port P] [--index DIR] [--auth USER:PASSWORD]
[--feeds FEEDS.txt [--feeds-every 15m]] [--allow-private-urls]`.

On first start with an empty index it indexes `seeds/` (shipped with the project) first.
"""

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the app to the network: use --auth)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--index", default=str(HERE / "index"), help="index folder (default ./index)")
    p.add_argument("--seeds", default=str(HERE / "seeds"), help="articles indexed on first start when the index is empty")
    p.add_argument("--auth", default=os.environ.get("RAG_AUTH"),
                   help="USER:PASSWORD required to open the app (or set RAG_AUTH)")
    p.add_argument("--max-upload-files", type=int, default=None,
                   help="files per upload (default 20, or RAG_MAX_UPLOAD_FILES)")
    p.add_argument("--max-upload-mb", type=int, default=None,
                   help="megabytes per uploaded file (default 50, or RAG_MAX_UPLOAD_MB)")
    p.add_argument("--feeds", default=None,
                   help="follow the feeds listed in this file (one URL a line), a round every --feeds-every")
    p.add_argument("--feeds-every", default="15m", help="time between feed rounds (default 15m; 30s, 1h …)")
    p.add_argument("--allow-private-urls", action="store_true",
                   help="fetch URLs on private or local addresses even when the app is bound beyond 127.0.0.1")
    args = p.parse_args(argv)
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            sys.exit("error: --auth must be USER:PASSWORD")
        auth = (user, password)

    for flag in ("max_upload_files", "max_upload_mb"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            sys.exit(f"error: --{flag.replace('_', '-')} must be at least 1")

    from rag.cli import user_errors
    from rag.ui import MAX_UPLOAD_FILES, MAX_UPLOAD_MB, launch

    with user_errors():
        launch(index=args.index, host=args.host, port=args.port, seeds=args.seeds, auth=auth,
               max_files=args.max_upload_files or MAX_UPLOAD_FILES, max_mb=args.max_upload_mb or MAX_UPLOAD_MB,
               feeds=args.feeds, every=args.feeds_every, allow_private_urls=args.allow_private_urls)


if __name__ == "__main__":
    main()
