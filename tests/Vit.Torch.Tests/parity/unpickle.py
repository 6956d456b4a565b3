#!/usr/bin/env python3
"""Loads a pickle with Python's own pickle module, which runs whatever the pickle asks for. TorchCheckpointTests.cs
uses it to show that its hostile pickles are live, i.e. that refusing them is what keeps their payload from running.

    python3 unpickle.py FILE

Needs no torch: any python3 does.
"""
import pickle
import sys

if len(sys.argv) != 2:
    sys.exit(__doc__)
with open(sys.argv[1], "rb") as f:
    print(repr(pickle.load(f)))
