"""The peers the mesh is measured against: a one-process monolith and ``langgraph dev``, on the same graph and data."""
