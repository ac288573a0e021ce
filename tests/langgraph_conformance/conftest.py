"""LangGraph's checkpointer conformance suite as it stands on LangGraph's main branch
(``libs/checkpoint-conformance`` of langchain-ai/langgraph at f09cfe8ff, MIT licensed: see
``LICENSE``; imports renamed to this package), which adds the ``DeltaChannel`` history tests
that the released ``langgraph-checkpoint-conformance`` lacks. ``tests/test_langgraph.py`` runs
it on every store; its ``test_*`` functions take a saver, so pytest does not collect them here.
"""

collect_ignore_glob = ["*.py"]
