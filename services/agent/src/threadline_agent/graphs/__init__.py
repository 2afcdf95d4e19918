"""What answers a question: the assistants' graphs, the chat model, and the tools a graph calls.

- ``assistants``: the graphs users pick by name, and ``approval``, the step where a tool call waits for a person;
- ``planner`` and ``supervisor``: the plan/execute/reflect and supervisor-with-a-team patterns, built on ``steps``;
- ``chat_models``: which model answers, an OpenAI-compatible endpoint or ``answerer``, the offline one;
- ``knowledge_base``, ``calculator`` and ``memory_tools``: the tools.
"""
