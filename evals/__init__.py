"""The evaluation loop: ``python -m evals`` (``./task eval``) scores retrieval and answers; see docs/eval.md."""
