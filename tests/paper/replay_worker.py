"""Replay an account in a child process (killed by a test mid-replay): python replay_worker.py URL NAME START END."""

import sys

from research.paper.replay import replay

if __name__ == "__main__":
    url, name, start, end = sys.argv[1:5]
    replay(name, start, end, url=url, progress=False)
