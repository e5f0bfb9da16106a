"""A frontend worker process (started by `text.pool`): once its dictionaries are loaded it writes a pickled
("ready", None), then reads pickled `analyze` calls on stdin and writes pickled ("ok", Analysis) or ("err",
exception) replies on stdout, until stdin closes.

Started as a fresh interpreter (`python -P -c ...`), so it never imports the caller's main script.
Stray prints go to stderr: file descriptor 1 is moved aside for the replies before any analysis runs.
"""

from __future__ import annotations

import os
import pickle
import sys


def main() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() from any library now lands on stderr, not in the reply stream
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    from gsvd.engine.text.phonemize import analyze

    analyze("今天天气很好，我们一起去公园散步吧。 hello", "auto")  # load the dictionaries before the first request
    pickle.dump(("ready", None), replies, protocol=pickle.HIGHEST_PROTOCOL)  # the pool hands it out from now on
    replies.flush()
    while True:
        try:
            args = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = ("ok", analyze(*args))
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, who raises it
            reply = ("err", exc)
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


if __name__ == "__main__":
    main()
